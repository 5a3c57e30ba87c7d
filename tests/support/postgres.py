"""PostgreSQL for the tests: one database per test run, one fresh schema per test.

Fixtures (loaded for every test by tests/conftest.py):
  pg_database  session: the name of a database `mintpipe_test_<random>` made on the local server
               (MINTPIPE_TEST_PG, default postgresql://root@127.0.0.1:5432; trust auth), dropped when the run ends.
  pg_dsn       a DSN to a schema of its own in that database (asyncpg passes `?search_path=` on as a server
               setting), so every test starts from an empty database and runs its migrations; services launched
               with MINTPIPE_DATABASE_URL=<pg_dsn> see the same schema.
  db_url       parametrised over both engines: None (SQLite files, the default) and a pg_dsn. A test taking it
               runs twice, as test[sqlite] and test[postgresql]; build stores with
               `mintpipe.db.database_for(db_url, tmp_path / "x.sqlite3")`.
A server that cannot be reached fails the test loudly (pytest.fail), never skips it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

SERVER = os.environ.get("MINTPIPE_TEST_PG", "postgresql://root@127.0.0.1:5432")


def run_sql(database: str, sql: str, timeout: float = 60) -> None:
    """Run `sql` on the test server, from a thread of its own (fixtures may run while the tests' loop exists)."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(f"{SERVER.rstrip('/')}/{database}", timeout=10)
        try:
            await conn.execute(sql, timeout=timeout)
        finally:
            await conn.close()

    failure: list[BaseException] = []

    def thread() -> None:
        try:
            asyncio.run(go())
        except BaseException as exc:  # handed to the test below
            failure.append(exc)

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join(timeout + 15)
    if failure or worker.is_alive():
        where = urlsplit(SERVER)
        why = repr(failure[0]) if failure else "no answer"
        pytest.fail(f"PostgreSQL at {where.hostname}:{where.port or 5432} (MINTPIPE_TEST_PG) refused `{sql}`: {why}")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"mintpipe_test_{uuid.uuid4().hex[:12]}"
    run_sql("postgres", f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        # FORCE: a pool a failed test left open must not keep the database alive.
        run_sql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def dsn_for(database: str, schema: str | None = None) -> str:
    base = f"{SERVER.rstrip('/')}/{database}"
    return f"{base}?search_path={schema}" if schema else base


@pytest.fixture
def pg_dsn(pg_database: str) -> str:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    run_sql(pg_database, f"CREATE SCHEMA {schema}")
    return dsn_for(pg_database, schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_dsn")


@pytest.fixture
async def job_store(tmp_path, db_url: str | None):
    """An open JobStore on each engine (`db_url`): a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    from mintpipe.db.core import database_for
    from status.jobs.store import JobStore

    store = JobStore(database_for(db_url, tmp_path / "jobs.sqlite3"))
    await store.open()
    yield store
    await store.close()
