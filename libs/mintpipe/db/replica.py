"""PostgreSQL as the meeting point of several status replicas and gateways (issue 11): which DSN names it, a
connection of one's own (the change feed's listener, the leader's lock), and names scoped to the schema.

Only used when MINTPIPE_DATABASE_URL is a postgresql:// DSN; with it unset everything stays in-process and on
SQLite, as on one host. The DSN may hold a password: it is never logged. The tables this part owns are
migrations 0100-0199 (libs/mintpipe/db/migrations).
"""

from __future__ import annotations

import asyncpg

from mintpipe.db.core import is_postgres_url

# pg_advisory_lock's two-int form: this namespace, and a hash of the schema, so two systems in one database
# (each in its own schema, as the tests run) have a leader each. Distinct from the migrations' bigint lock.
LOCK_NAMESPACE = 0x6D696E74  # "mint"


def postgres_dsn(value: str | None) -> str | None:
    """The DSN when it names PostgreSQL, else None (SQLite: the embedded default)."""
    return value if is_postgres_url(value) else None


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection, with a bounded connect time so a dead database surfaces as an error, not a hang."""
    return await asyncpg.connect(dsn, timeout=10)


async def schema_of(conn: asyncpg.Connection) -> str:
    """The schema this DSN works in (search_path), which scopes the leader lock and the feed's channel."""
    return await conn.fetchval("SELECT current_schema()") or "public"
