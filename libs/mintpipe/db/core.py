"""One database interface, two engines: SQLite (aiosqlite, the embedded default) and PostgreSQL (asyncpg).

Every store (jobs, chain, ops history, the pin ledger, ...) talks to a `Database`, never to a driver:

    rows  = await db.fetch("SELECT ... WHERE job_id = ?", (job_id,))      # list of rows (row["col"], row[0])
    row   = await db.fetchrow(sql, args)                                   # one row or None
    value = await db.fetchval(sql, args)                                   # first column of the first row
    count = await db.execute(sql, args)                                    # rows changed
    async with db.transaction(lock="budget") as tx:                        # one atomic unit
        await tx.fetchrow(...); await tx.execute(...)
    async with db.locked(key) as tx: ...                                   # serialised, not necessarily atomic
    result = await db.transact(body, lock="budget")                        # body(tx): one atomic unit
    result = await db.write(body)                                          # body(conn): see below

`transact` and `write` take the body as a coroutine function of a Conn that awaits nothing but the Conn's own
calls, so the SQLite engine can run it whole on its writer thread (one hop, group-committed) while PostgreSQL
runs the same code on the event loop: the stores' logic is written once for both engines.

SQL is written once with `?` placeholders in the subset both engines speak (upserts as
`INSERT ... ON CONFLICT (...) DO UPDATE/NOTHING`, no scalar MAX/MIN, booleans as 0/1). The PostgreSQL engine
rewrites `?` to `$1..$n` (cached per statement). `db.for_update` is " FOR UPDATE" on PostgreSQL, "" on SQLite.

Concurrency, and why it differs per engine:
- SQLite: two connections per process. Reads (`fetch`/`fetchrow`/`fetchval` of a SELECT) go to a reader
  (aiosqlite) and see what is committed. Every write (`execute`, a `fetch` of anything but a SELECT, `transaction`,
  `locked`, `transact`, `write`) goes to one writer thread (mintpipe.db.group_commit) that commits every write queued
  meanwhile in one `BEGIN IMMEDIATE` transaction with one fsync, each write in its own savepoint (a failing one is
  rolled back alone), and each await returns only after that COMMIT. Measured on the submit path
  (bench/bridge.py): the asyncio lock held across ~4 thread hops and an fsync per write made submissions queue
  behind each other's commits. `transact`/`write` bodies run on the writer thread in one hop; an `async with
  transaction()` body stays on the event loop and sends its statements one by one (a hop each) while later writes
  wait. `BEGIN IMMEDIATE` serialises processes sharing the file; `lock=` keys are ignored (the file lock is global);
  `locked()` is a transaction. A write inside a transaction body must go through its `tx`, never `db` (it would
  wait for the transaction it is in).
- PostgreSQL: a small pool (several replicas share the server's ~100 connections), each transaction on its own
  connection, READ COMMITTED. `lock=key` takes `pg_advisory_xact_lock(hashtextextended(key, 0))` first, so
  read-modify-write sequences on one key (a budget, a CID claim, one job's history) are serialised across
  replicas and released at commit; rows read to be updated use `db.for_update`.
  Pooled connections are NOT reset on release beyond rolling back an open transaction (see _light_reset: the
  default reset cost a round trip per query). So never leave session state on a pooled connection: a
  session-level advisory lock (leader election), LISTEN or SET needs a connection of its own
  (`asyncpg.connect(db.url)`), not `db.connection()`.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiosqlite

from mintpipe.db.group_commit import GroupCommit

POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(url: str | None) -> bool:
    # urlsplit lowercases the scheme, as the settings' validator does: POSTGRESQL://... is PostgreSQL everywhere.
    return bool(url) and urlsplit(url).scheme in POSTGRES_SCHEMES  # type: ignore[arg-type]


@functools.lru_cache(maxsize=1024)
def to_dollar_params(sql: str) -> str:
    """`?` placeholders to asyncpg's `$n` (our SQL has no `?` inside string literals)."""
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _m: f"${next(counter)}", sql)


def split_script(script: str) -> list[str]:
    """A multi-statement SQL script as its statements (SQLite's own completeness test, not a naive split)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()):
        out.append(buf.strip())
    return out


class Conn:
    """What a transaction hands out: the same four calls as the Database, on one connection."""

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Any | None:
        rows = await self.fetch(sql, args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        row = await self.fetchrow(sql, args)
        return row[0] if row is not None else None

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        raise NotImplementedError


class Database(Conn):
    engine: str = ""
    for_update: str = ""

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def transaction(self, lock: str | None = None) -> Any:  # async context manager yielding a Conn
        raise NotImplementedError

    def locked(self, key: str) -> Any:  # async context manager yielding a Conn
        raise NotImplementedError

    async def transact(self, body: Callable[[Conn], Awaitable[Any]], lock: str | None = None) -> Any:
        """`await body(tx)` in one transaction (as `transaction(lock)`); its result. The body awaits nothing but
        tx's calls (SQLite runs it on its writer thread)."""
        async with self.transaction(lock) as tx:
            return await body(tx)

    async def write(self, body: Callable[[Conn], Awaitable[Any]]) -> Any:
        """`await body(conn)` as cheaply as the engine allows: on SQLite one group-committed savepoint on the
        writer thread (atomic there); elsewhere statement by statement on the pool, no transaction (so the body's
        own statements must keep it correct, e.g. a compare-and-set). Same rule for the body as transact()."""
        return await body(self)

    async def migrate(self) -> list[str]:
        """Apply every migration not yet recorded (see mintpipe.db.migrations); the ids applied now."""
        from mintpipe.db.migrations import migrate
        return await migrate(self)

    async def open_migrated(self) -> None:
        """open() then migrate(): what every store does first. A refused database (newer than this code, a
        failing migration) leaves no connection, nor its thread, behind."""
        await self.open()
        try:
            await self.migrate()
        except BaseException:
            await self.close()
            raise

    @property
    def description(self) -> str:
        return self.engine


# ---- SQLite ---------------------------------------------------------------------------------------------------

class _SqliteConn(Conn):
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return list(await self.db.execute_fetchall(sql, args))

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return (await self.db.execute(sql, args)).rowcount


class _WriterConn(Conn):
    """A Conn on the writer thread's sqlite3 connection, for a body run there: its calls never suspend."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return _fetchall(self.db, sql, args)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return _rowcount_of(self.db, sql, args)


class _SessionConn(Conn):
    """A Conn for an `async with transaction()` body: each call runs on the writer thread, inside its savepoint."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return await self.session.call(_fetchall, sql, args)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return await self.session.call(_rowcount_of, sql, args)


def _fetchall(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[Any]:
    return db.execute(sql, args).fetchall()


def _rowcount_of(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> int:
    return db.execute(sql, args).rowcount


def _drive(db: sqlite3.Connection, body: Callable[[Conn], Awaitable[Any]]) -> Any:
    """Runs a transact()/write() body to its end on the writer thread: its awaits are _WriterConn calls, which
    complete at once, so one send() finishes it."""
    coro = body(_WriterConn(db))
    try:
        coro.send(None)  # type: ignore[attr-defined]
    except StopIteration as done:
        return done.value
    coro.close()  # type: ignore[attr-defined]
    raise RuntimeError("a transact()/write() body awaited something other than its connection's calls")


@functools.lru_cache(maxsize=1024)
def _is_read(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


class SqliteDatabase(Database):
    engine = "sqlite"
    for_update = ""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._conn: _SqliteConn | None = None
        self.writer = GroupCommit(self.path, synchronous=synchronous)

    @property
    def description(self) -> str:
        return f"sqlite:{self.path}"

    async def open(self) -> None:
        if self._conn is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pending = aiosqlite.connect(self.path, isolation_level=None, timeout=30)  # its thread starts when awaited
        # A daemon thread: a ledger or store nobody closed must not keep the process from exiting (the sync
        # sqlite3 ledger never did). Safe: SQLite's commit is atomic whenever the process ends.
        thread = getattr(pending, "_thread", pending)
        if isinstance(thread, threading.Thread):
            thread.daemon = True
        db = await pending
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={self.synchronous}")
        await db.execute("PRAGMA busy_timeout=30000")
        try:
            await self.writer.start()
        except BaseException:
            await db.close()
            raise
        self._conn = _SqliteConn(db)

    async def close(self) -> None:
        if self._conn is not None:
            await self.writer.stop()
            await self._conn.db.close()
            self._conn = None

    @property
    def conn(self) -> _SqliteConn:
        assert self._conn is not None, "open() first"
        return self._conn

    @property
    def raw(self) -> aiosqlite.Connection:
        """The aiosqlite connection (SQLite-only checks such as PRAGMAs; stores never use it)."""
        return self.conn.db

    async def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Every statement of both connections, reader and writer (bench/pg_roundtrips.py counts them)."""
        await self.raw.set_trace_callback(callback)
        await self.writer.run(lambda db: db.set_trace_callback(callback))

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        if _is_read(sql):  # the reader: what is committed, never queued behind the writer's fsync
            return await self.conn.fetch(sql, args)
        return await self.writer.run(_fetchall, sql, args)  # e.g. INSERT ... RETURNING

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return await self.writer.run(_rowcount_of, sql, args)

    @asynccontextmanager
    async def transaction(self, lock: str | None = None) -> AsyncIterator[Conn]:
        self.conn  # noqa: B018  # open() first
        async with self.writer.session() as session:
            yield _SessionConn(session)

    def locked(self, key: str) -> Any:
        return self.transaction()

    async def transact(self, body: Callable[[Conn], Awaitable[Any]], lock: str | None = None) -> Any:
        self.conn  # noqa: B018  # open() first
        return await self.writer.run(_drive, body)

    async def write(self, body: Callable[[Conn], Awaitable[Any]]) -> Any:
        return await self.transact(body)


# ---- PostgreSQL -----------------------------------------------------------------------------------------------

def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PgConn(Conn):
    """A Conn over one asyncpg connection (a transaction's, or a migration's: mintpipe.db.migrations)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return await self.conn.fetch(to_dollar_params(sql), *args)

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Any | None:
        return await self.conn.fetchrow(to_dollar_params(sql), *args)

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return await self.conn.fetchval(to_dollar_params(sql), *args)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return _rowcount(await self.conn.execute(to_dollar_params(sql), *args))


async def _light_reset(conn: Any) -> None:
    """What a connection needs before going back to the pool here. asyncpg's default reset sends
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release, one more round trip for each
    pooled query (measured: 192 of a job's 290 statements on PostgreSQL, bench/pg_roundtrips.py). These stores
    take only transaction-scoped advisory locks, and open no cursor, LISTEN or SET on pooled connections; the
    one thing to undo is a transaction a cancelled caller left open."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))"


class PostgresDatabase(Database):
    engine = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4,
                 connection_init: Callable[[Any], Awaitable[None]] | None = None) -> None:
        # max_size 4: a status replica's events consumer applies up to its prefetch at once, but each holds a
        # connection for ~1 ms; several replicas, pinners and gateways share the server's 100 connections.
        self.url = url
        self.min_size, self.max_size = min_size, max_size
        self.connection_init = connection_init  # e.g. a query logger (bench/pg_roundtrips.py)
        self._pool: Any = None

    @property
    def description(self) -> str:
        from mintpipe.runtime.log import redact_url
        return redact_url(self.url)

    async def open(self) -> None:
        if self._pool is not None:
            return
        import asyncpg  # only deployments on PostgreSQL load the driver

        # statement_cache_size stays on (asyncpg's default): a statement is prepared once per connection, so
        # each later call is one round trip.
        self._pool = await asyncpg.create_pool(self.url, min_size=self.min_size, max_size=self.max_size,
                                               command_timeout=60, init=self.connection_init, reset=_light_reset)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> Any:
        assert self._pool is not None, "open() first"
        return self._pool

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return await self.pool.fetch(to_dollar_params(sql), *args)

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Any | None:
        return await self.pool.fetchrow(to_dollar_params(sql), *args)

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return await self.pool.fetchval(to_dollar_params(sql), *args)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return _rowcount(await self.pool.execute(to_dollar_params(sql), *args))

    @asynccontextmanager
    async def transaction(self, lock: str | None = None) -> AsyncIterator[Conn]:
        async with self.pool.acquire() as raw, raw.transaction():
            conn = PgConn(raw)
            if lock is not None:
                await conn.execute(ADVISORY_LOCK, (lock,))
            yield conn

    def locked(self, key: str) -> Any:
        return self.transaction(lock=key)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A raw asyncpg connection from the pool (migrations, tests)."""
        async with self.pool.acquire() as raw:
            yield raw


def database_for(url: str | None, sqlite_path: Path, **sqlite_options: Any) -> Database:
    """PostgreSQL when `url` is a postgresql:// DSN (MINTPIPE_DATABASE_URL), else the SQLite file `sqlite_path`."""
    if is_postgres_url(url):
        return PostgresDatabase(url)  # type: ignore[arg-type]
    return SqliteDatabase(sqlite_path, **sqlite_options)
