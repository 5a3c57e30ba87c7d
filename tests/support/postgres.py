"""A PostgreSQL database of its own for a test (created on the local server, dropped afterwards).

The server is the machine's (127.0.0.1:5432, trust auth), or MINTPIPE_TEST_POSTGRES_URL's. A test that needs it
fails loudly when it cannot be reached, never skips.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

SERVER = os.environ.get("MINTPIPE_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """The DSN of a fresh, empty database, dropped (connections and all) when the test ends."""
    name = f"mintpipe_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {urlsplit(SERVER).netloc} cannot make a test database: {exc} "
                    "(set MINTPIPE_TEST_POSTGRES_URL)")
    try:
        yield _with_database(SERVER, name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
