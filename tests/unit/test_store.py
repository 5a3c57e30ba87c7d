"""The job store on both engines (SQLite, PostgreSQL): idempotency keys, pages newest first, events applied once."""

import pytest

from mintpipe.db.core import database_for
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.store import BadCursor, IdempotencyConflict, JobStore

pytestmark = pytest.mark.unit

WALLET = "0x000000000000000000000000000000000000dEaD"
H1, H2 = "1" * 64, "2" * 64


@pytest.fixture
def store(job_store: JobStore) -> JobStore:  # tests/support/postgres.py: the store on each engine
    return job_store


async def test_same_key_same_body_gives_the_same_job(store):
    first, created = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    again, created_again = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    assert created and not created_again
    assert again.job_id == first.job_id
    assert again.stage == jobs_pb2.STAGE_QUEUED


async def test_same_key_other_body_is_a_conflict(store):
    first, _ = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    with pytest.raises(IdempotencyConflict) as info:
        await store.reserve("k1", H2, WALLET, "gen1", '{"seed":2}')
    assert info.value.job_id == first.job_id


async def test_keys_outlive_jobs(store):
    first, _ = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    await store.db.execute("DELETE FROM jobs")  # job retention cleanup
    again, created = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    assert again.job_id == first.job_id and created


async def test_published_flag_survives_reopen(store, tmp_path, db_url):
    job, _ = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    assert not job.published
    assert await store.mark_published(job.job_id)
    await store.close()
    reopened = JobStore(database_for(db_url, tmp_path / "jobs.sqlite3"))
    await reopened.open()
    assert (await reopened.get(job.job_id)).published
    await reopened.close()
    await store.open()


async def test_events_apply_once_and_in_stage_order(store):
    job, _ = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    pinned = broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_PINNED, progress=100,
                                 token_uri="ipfs://bafymeta")
    late = broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_RENDERING, progress=40)
    assert (await store.apply(pinned)).stage == jobs_pb2.STAGE_PINNED
    assert await store.apply(pinned) is None
    assert await store.apply(late) is None
    stored = await store.get(job.job_id)
    assert stored.stage == jobs_pb2.STAGE_PINNED and stored.state.token_uri == "ipfs://bafymeta"


async def test_event_for_unknown_job_is_ignored(store):
    ghost = broker_pb2.JobEvent(job_id="f" * 32, stage=jobs_pb2.STAGE_RENDERING, progress=5)
    assert await store.apply(ghost) is None
    assert await store.get("f" * 32) is None


async def test_pages_newest_first_with_filters(store):
    ids = []
    for i in range(7):
        job, _ = await store.reserve(f"k{i}", H1, WALLET if i % 2 else "0x" + "1" * 40, "gen1", "{}")
        ids.append(job.job_id)
    page1, cursor = await store.list(limit=3)
    page2, cursor2 = await store.list(limit=3, cursor=cursor)
    page3, cursor3 = await store.list(limit=3, cursor=cursor2)
    got = [r.job_id for r in page1 + page2 + page3]
    assert got == list(reversed(ids)) and cursor3 == ""
    mine, _ = await store.list(wallet=WALLET, limit=10)
    assert [r.job_id for r in mine] == [ids[5], ids[3], ids[1]]
    queued, _ = await store.list(stage=jobs_pb2.STAGE_PINNED)
    assert queued == []
    with pytest.raises(BadCursor):
        await store.list(cursor="!!garbage")


def event(job_id: str, stage: int, progress: int = 0) -> broker_pb2.JobEvent:
    return broker_pb2.JobEvent(job_id=job_id, stage=stage, progress=progress, event_id=f"{job_id}-{stage}")


async def test_retention_deletes_finished_jobs_and_old_keys_independently(store):
    from status.workers.sweeper import RetentionSweeper

    day = 86400.0
    done, _ = await store.reserve("done", H1, WALLET, "gen1", "{}")
    running, _ = await store.reserve("running", H2, WALLET, "gen1", '{"seed":2}')
    await store.apply(event(done.job_id, jobs_pb2.STAGE_PINNED, 100))
    await store.apply(event(running.job_id, jobs_pb2.STAGE_RENDERING, 10))
    retention = RetentionSweeper(store, job_retention=30 * day, key_retention=3 * day, interval=3600)

    # Two days on: nothing is old enough yet.
    assert await retention.prune_once(now=done.created_at + 2 * day) == (0, 0)
    # Four days on: the keys (kept 3 days, so at least the promised 24 h) go; both jobs stay.
    assert await retention.prune_once(now=done.created_at + 4 * day) == (0, 2)
    assert await store.get(done.job_id) is not None
    # A month on: the finished job goes, the one still rendering stays whatever its age.
    assert await retention.prune_once(now=done.created_at + 31 * day) == (1, 0)
    assert await store.get(done.job_id) is None
    assert (await store.get(running.job_id)).stage == jobs_pb2.STAGE_RENDERING


async def test_a_key_kept_longer_than_its_job_still_names_the_same_job(store):
    first, _ = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    await store.apply(event(first.job_id, jobs_pb2.STAGE_FAILED))
    jobs, keys = await store.prune(jobs_before=first.updated_at + 10, keys_before=first.created_at - 10)
    assert (jobs, keys) == (1, 0)
    again, created = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    assert created and again.job_id == first.job_id
    with pytest.raises(IdempotencyConflict):
        await store.reserve("k1", H2, WALLET, "gen1", '{"seed":2}')


async def test_a_commit_is_durable_past_a_host_crash_not_only_a_killed_process(tmp_path):
    # Events are acked once committed: in WAL mode only synchronous=FULL (2) syncs the log on every commit;
    # NORMAL (1) may lose the last commits, acked already, to a power cut or a host crash. (SQLite only: a
    # PostgreSQL commit is durable unless its server is configured otherwise.)
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    try:
        assert await store.db.fetchval("PRAGMA synchronous") == 2
        assert await store.db.fetchval("PRAGMA journal_mode") == "wal"
    finally:
        await store.close()
