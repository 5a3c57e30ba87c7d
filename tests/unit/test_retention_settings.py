"""Idempotency keys kept 72 h and never under 24, finished jobs kept 30 days: from the environment variables,
through the status service's settings, to what its retention sweeper deletes."""

from __future__ import annotations

import pytest

from mintpipe.config import load_settings
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.store import JobStore
from status.settings import StatusSettings
from status.workers.sweeper import retention_sweeper

pytestmark = pytest.mark.unit
WALLET = "0x000000000000000000000000000000000000dEaD"
HOUR, DAY = 3600.0, 86400.0


@pytest.fixture
async def store(tmp_path):
    s = JobStore(tmp_path / "jobs.sqlite3")
    await s.open()
    yield s
    await s.close()


async def finished_job(store: JobStore, key: str) -> tuple[str, float]:
    job, _ = await store.reserve(key, key.ljust(64, "0"), WALLET, "gen1", "{}")
    record = await store.apply(broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_PINNED, progress=100))
    return job.job_id, record.updated_at


async def survivors(store: JobStore, job_id: str, key: str) -> tuple[bool, bool]:
    key_kept = await store.db.fetchrow("SELECT 1 FROM idempotency_keys WHERE key = ?", (key,)) is not None
    return await store.get(job_id) is not None, key_kept


@pytest.mark.parametrize(("env", "key_hours", "job_days"), [({}, 72, 30), (
    {"STATUS_IDEMPOTENCY_KEY_HOURS": "30", "STATUS_JOB_RETENTION_DAYS": "2"}, 30, 2)], ids=["defaults", "set"])
async def test_the_settings_decide_what_the_sweeper_deletes(store, monkeypatch, env, key_hours, job_days):
    for name in ("STATUS_IDEMPOTENCY_KEY_HOURS", "STATUS_JOB_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sweeper = retention_sweeper(store, load_settings(StatusSettings))
    job_id, at = await finished_job(store, "k1")

    await sweeper.prune_once(now=at + key_hours * HOUR - 60)
    assert await survivors(store, job_id, "k1") == (True, True)
    await sweeper.prune_once(now=at + key_hours * HOUR + 60)
    assert await survivors(store, job_id, "k1") == (job_days * DAY > key_hours * HOUR + 60, False)
    await sweeper.prune_once(now=at + job_days * DAY - 60)
    assert (await survivors(store, job_id, "k1"))[0] is True
    await sweeper.prune_once(now=at + job_days * DAY + 60)
    assert await survivors(store, job_id, "k1") == (False, False)


def test_keys_are_never_kept_under_24_hours(monkeypatch, capsys):
    monkeypatch.setenv("STATUS_IDEMPOTENCY_KEY_HOURS", "23")
    with pytest.raises(SystemExit):
        load_settings(StatusSettings)
    assert "STATUS_IDEMPOTENCY_KEY_HOURS" in capsys.readouterr().err
