"""The SQLite job store: idempotency keys, pages newest first, events applied once."""

import pytest

from mintpipe.v1 import broker_pb2, jobs_pb2
from status.store import BadCursor, IdempotencyConflict, JobStore

pytestmark = pytest.mark.unit

WALLET = "0x000000000000000000000000000000000000dEaD"
H1, H2 = "1" * 64, "2" * 64


@pytest.fixture
async def store(tmp_path):
    s = JobStore(tmp_path / "jobs.sqlite3")
    await s.open()
    yield s
    await s.close()


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


async def test_published_flag_survives_reopen(store, tmp_path):
    job, _ = await store.reserve("k1", H1, WALLET, "gen1", "{}")
    assert not job.published
    assert await store.mark_published(job.job_id)
    await store.close()
    reopened = JobStore(tmp_path / "jobs.sqlite3")
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
