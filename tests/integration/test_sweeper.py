"""A reserved job whose publish was never confirmed is republished, once."""

import json

import pytest

from mintpipe.v1 import broker_pb2
from status.jobs.store import JobStore
from status.workers.sweeper import OrphanSweeper

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


async def test_orphans_are_republished_once_and_published_jobs_are_left_alone(broker, probe, tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    orphan, _ = await store.reserve("k-orphan", "a" * 64, WALLET, "gen1", json.dumps({"seed": 1}))
    fine, _ = await store.reserve("k-fine", "b" * 64, WALLET, "gen1", json.dumps({"seed": 2}))
    await store.mark_published(fine.job_id)
    sweeper = OrphanSweeper(store, broker, orphan_after=0.0, interval=1)

    assert await sweeper.sweep_once() == 1
    assert await sweeper.sweep_once() == 0
    messages = await probe.drain(broker.topology.render_queue)
    assert [broker_pb2.RenderJob.FromString(m.body).job_id for m in messages] == [orphan.job_id]
    render = broker_pb2.RenderJob.FromString(messages[0].body)
    assert json.loads(render.settings_json) == {"seed": 1} and render.wallet == WALLET
    assert (await store.get(orphan.job_id)).published
    await store.close()
