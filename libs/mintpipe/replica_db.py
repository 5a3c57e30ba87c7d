"""PostgreSQL as the meeting point of several status replicas and gateways (issue 11): the DSN setting, the
tables this part owns (migrations 0100-0199) and a connection helper.

Only used when MINTPIPE_DATABASE_URL is a postgresql:// DSN; with it unset everything stays in-process and on
SQLite, as on one host. The DSN is a secret (it may hold a password): it is kept as a SecretStr and never logged.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import asyncpg
from pydantic import Field, SecretStr, field_validator

from mintpipe.config import ServiceSettings

POSTGRES_SCHEMES = ("postgresql", "postgres")

# Applied in id order, each once. Written to be re-runnable (IF NOT EXISTS), so they are safe both under the
# shared migration framework (schema_migrations, by id) and, before it exists in a database, on their own.
MIGRATIONS: dict[str, str] = {
    # Token buckets shared by every replica (mintpipe.pg_ratelimit): one row per (scope, key).
    "0100_rate_buckets": """
        CREATE TABLE IF NOT EXISTS rate_buckets (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            tokens DOUBLE PRECISION NOT NULL,
            granted BOOLEAN NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (scope, key)
        );
        CREATE INDEX IF NOT EXISTS rate_buckets_updated ON rate_buckets (scope, updated_at);
    """,
}

# pg_advisory_lock keys (one bigint namespace per database). Distinct from any other part's keys.
SCHEMA_LOCK = 0x6D696E7450_0100  # "mintP" + 0100: applying this part's migrations
LEADER_LOCK = 0x6D696E7450_0101  # the status replicas' leader (status.leader)


def postgres_dsn(value: str | None) -> str | None:
    """The DSN when it names PostgreSQL, else None (SQLite: the embedded default)."""
    if value and urlsplit(value).scheme in POSTGRES_SCHEMES:
        return value
    return None


async def ensure_schema(conn: asyncpg.Connection) -> None:
    """Apply this part's migrations (idempotent), one replica at a time."""
    await conn.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK)
    try:
        for sql in MIGRATIONS.values():
            await conn.execute(sql)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK)


async def connect(dsn: str, **kwargs: object) -> asyncpg.Connection:
    """One connection, with a bounded connect time so a dead database surfaces as an error, not a hang."""
    return await asyncpg.connect(dsn, timeout=10, **kwargs)


class DatabaseSettings(ServiceSettings):
    """MINTPIPE_DATABASE_URL for the services that share state across replicas (status, gateway)."""

    database_url: SecretStr | None = Field(None, description="postgresql://user:pass@host/db to share state "
                                           "between replicas (unset: SQLite under the data folder)")

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and postgres_dsn(value.get_secret_value()) is None:
            raise ValueError("must be a postgresql:// DSN (unset: SQLite under the data folder)")
        return value

    @property
    def database_dsn(self) -> str | None:
        return postgres_dsn(self.database_url.get_secret_value()) if self.database_url else None
