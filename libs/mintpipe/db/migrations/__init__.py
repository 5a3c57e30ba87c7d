"""Schema migrations: one mechanism for both engines (SQLite and PostgreSQL, see mintpipe.db.core).

How to add a migration (no list to edit, so branches add theirs without touching each other's files):
  create `libs/mintpipe/db/migrations/m<NNNN>_<name>.py` defining
      ID = "<NNNN>_<name>"   # must match the module name without its leading "m"
      SQL = "..."            # the script for both engines, written in SQLite's spelling; on PostgreSQL it is
                             # rewritten by `postgres_dialect` (REAL -> DOUBLE PRECISION, INTEGER -> BIGINT,
                             # INTEGER PRIMARY KEY AUTOINCREMENT -> BIGSERIAL PRIMARY KEY)
  or, when the engines need different statements, SQLITE = "..." and POSTGRES = "..." (either may be "" for a
  migration only one engine needs). Scripts may hold several statements; write them idempotent
  (IF NOT EXISTS) where you can, since SQLite files made before migrations existed already hold the 0001-0004
  tables. Never edit or renumber a migration once merged: add a new one.
  Id ranges per branch: 0001-0099 pg (core tables), 0100-0199 replicas, 0200-0299 s3, 0300-0399 ops.

What happens at start (`await db.migrate()`, called by every store's open()):
  - a table schema_migrations(id TEXT PRIMARY KEY, applied_at) records each applied migration BY ID;
  - under one transaction (PostgreSQL: holding pg_advisory_xact_lock(MIGRATION_LOCK), so when several replicas
    start at once one applies and the others wait, then find everything recorded; SQLite: BEGIN IMMEDIATE),
    every known migration whose id is not recorded is applied in id order, and recorded;
  - a database recording an id this code does not know is refused (DatabaseNewerThanCode: "database is newer
    than this code: unknown migration X; upgrade mintpipe"), and nothing is applied.
The whole run is one transaction on both engines (DDL is transactional in both): a failing migration leaves
the database as it was.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mintpipe.db.core import PostgresDatabase, SqliteDatabase, split_script

if TYPE_CHECKING:
    from mintpipe.db.core import Conn, Database

MIGRATION_LOCK = 0x6D696E7470697065  # "mintpipe" as a bigint: the advisory lock id every replica agrees on
ID_PATTERN = re.compile(r"^\d{4}_[a-z0-9_]+$")

TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at REAL NOT NULL)"


class DatabaseNewerThanCode(RuntimeError):
    def __init__(self, unknown: list[str]) -> None:
        super().__init__(f"database is newer than this code: unknown migration {', '.join(unknown)}; "
                         "upgrade mintpipe")
        self.unknown = unknown


@dataclass(frozen=True)
class Migration:
    id: str
    sqlite: str
    postgres: str


def postgres_dialect(sql: str) -> str:
    sql = re.sub(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", "BIGSERIAL PRIMARY KEY", sql)
    sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
    return re.sub(r"\bINTEGER\b", "BIGINT", sql)


def known_migrations() -> list[Migration]:
    """Every migration module of this package, in id order."""
    found: list[Migration] = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("m"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        mid = module.ID
        if not ID_PATTERN.match(mid) or info.name != f"m{mid}":
            raise RuntimeError(f"migration module {info.name}: ID {mid!r} must be NNNN_name and match the file name")
        shared = getattr(module, "SQL", None)
        sqlite = getattr(module, "SQLITE", shared)
        postgres = getattr(module, "POSTGRES", postgres_dialect(shared) if shared is not None else None)
        if sqlite is None or postgres is None:
            raise RuntimeError(f"migration {mid}: define SQL, or SQLITE and POSTGRES")
        found.append(Migration(mid, sqlite, postgres))
    found.sort(key=lambda m: m.id)
    ids = [m.id for m in found]
    numbers = [i[:4] for i in ids]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number: {ids}")
    return found


async def _apply(conn: Conn, engine: str, now: float) -> list[str]:
    migrations = known_migrations()
    applied = {r[0] for r in await conn.fetch("SELECT id FROM schema_migrations")}
    unknown = sorted(applied - {m.id for m in migrations})
    if unknown:
        raise DatabaseNewerThanCode(unknown)
    done = []
    for m in migrations:
        if m.id in applied:
            continue
        script = m.postgres if engine == "postgresql" else m.sqlite
        for statement in split_script(script):
            await conn.execute(statement)
        await conn.execute("INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)", (m.id, now))
        done.append(m.id)
    return done


async def migrate(db: Database) -> list[str]:
    """Bring `db` up to this code's schema; the ids applied by this call (empty when already up to date)."""
    now = time.time()
    if isinstance(db, PostgresDatabase):
        async with db.connection() as raw, raw.transaction():
            await raw.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await raw.execute(postgres_dialect(TABLE))
            from mintpipe.db.core import PgConn
            return await _apply(PgConn(raw), db.engine, now)
    assert isinstance(db, SqliteDatabase)
    async with db.transaction() as conn:
        await conn.execute(TABLE)
        return await _apply(conn, db.engine, now)
