"""Schema migrations by id: applied once even when several processes start at the same moment, and a database
that a newer mintpipe migrated is refused by name instead of being used half-understood."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from mintpipe.db.core import database_for
from mintpipe.db.migrations import DatabaseNewerThanCode, known_migrations
from status.jobs.store import JobStore
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

# A child process that opens a store at an agreed moment and prints the migrations IT applied.
CHILD = """
import asyncio, json, sys, time
from mintpipe.db.core import database_for
from pathlib import Path

async def main(url, path, at):
    db = database_for(url or None, Path(path))
    await db.open()
    time.sleep(max(0.0, at - time.time()))
    applied = await db.migrate()
    await db.close()
    print(json.dumps(applied))

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


async def applied_ids(db_url, path) -> list[str]:
    db = database_for(db_url, path)
    await db.open()
    try:
        return [r[0] for r in await db.fetch("SELECT id FROM schema_migrations ORDER BY id")]
    finally:
        await db.close()


def test_three_processes_starting_at_once_apply_each_migration_once(tmp_path, db_url):
    path = tmp_path / "jobs.sqlite3"
    at = time.time() + 2.0  # both connected by then, both migrate at the same moment
    children = [subprocess.Popen([sys.executable, "-c", CHILD, db_url or "", str(path), str(at)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    every = [m.id for m in known_migrations()]
    # One process applied them all; the others waited (advisory lock / BEGIN IMMEDIATE) and found them recorded.
    assert sorted(results, key=len) == [[], [], every], results
    assert asyncio.run(applied_ids(db_url, path)) == every


async def test_a_second_start_applies_nothing_and_keeps_the_data(tmp_path, db_url):
    store = JobStore(database_for(db_url, tmp_path / "jobs.sqlite3"))
    await store.open()
    job, _ = await store.reserve("k", "h" * 64, "0x" + "1" * 40, "gen1", "{}")
    assert await store.db.migrate() == []
    await store.close()
    again = JobStore(database_for(db_url, tmp_path / "jobs.sqlite3"))
    await again.open()
    assert (await again.get(job.job_id)) is not None
    await again.close()


async def test_a_database_with_an_unknown_migration_is_refused_by_name(tmp_path, db_url):
    store = JobStore(database_for(db_url, tmp_path / "jobs.sqlite3"))
    await store.open()
    # What a newer mintpipe would have left behind.
    await store.db.execute("INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)",
                           ("9999_from_the_future", 1.0))
    await store.close()
    newer = JobStore(database_for(db_url, tmp_path / "jobs.sqlite3"))
    with pytest.raises(DatabaseNewerThanCode) as refused:
        await newer.open()
    await newer.database.close()
    assert str(refused.value) == ("database is newer than this code: unknown migration 9999_from_the_future; "
                                  "upgrade mintpipe")


def test_the_status_service_refuses_a_newer_database_at_start_naming_the_migration(tmp_path):
    async def plant() -> None:
        store = JobStore(tmp_path / "jobs.sqlite3")
        await store.open()
        await store.db.execute("INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)", ("0150_leader", 1.0))
        await store.close()

    asyncio.run(plant())
    done = subprocess.run([sys.executable, "-m", "status"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "MINTPIPE_DATA_DIR": str(tmp_path),
                               "STATUS_GRPC_PORT": "0", "STATUS_HTTP_PORT": "0"})
    assert done.returncode == 2, done.stderr
    assert "unknown migration 0150_leader; upgrade mintpipe" in done.stdout + done.stderr
