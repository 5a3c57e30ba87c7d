"""The status service's events consumer against the real broker and a real SQLite store."""

import asyncio

import pytest

from mintpipe.messaging.events import EventPublisher
from mintpipe.v1 import broker_pb2, jobs_pb2
from tests.support.broker import wait_for

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


async def test_events_land_in_the_store_in_stage_order_despite_duplicates(broker, probe, status_side):
    store, consumer = status_side
    job, _ = await store.reserve("key", "a" * 64, WALLET, "gen1", "{}")
    events = EventPublisher(broker, "test")

    async def settled():
        # Every event published so far consumed and acked (messages the consumer holds unacked are inflight;
        # a delivery still on its way would show as neither, hence twice, a moment apart).
        for _ in range(2):
            if consumer.inflight or await probe.ready(broker.topology.status_queue):
                return False
            await asyncio.sleep(0.3)
        return True

    await events.emit(job.job_id, jobs_pb2.STAGE_RENDERING, 10)
    await events.emit(job.job_id, jobs_pb2.STAGE_RENDERED, 70)
    await events.emit(job.job_id, jobs_pb2.STAGE_RENDERING, 30)  # late: must not step back
    await events.emit(job.job_id, jobs_pb2.STAGE_RENDERED, 60)  # a duplicate with less progress: neither
    await wait_for(settled)
    record = await store.get(job.job_id)
    # Checked here, before anything later could cover a step backwards up.
    assert (record.stage, record.state.progress) == (jobs_pb2.STAGE_RENDERED, 70)

    await events.emit(job.job_id, jobs_pb2.STAGE_PINNED, 100, token_uri="ipfs://bafytoken",
                      assets=jobs_pb2.JobAssets(image="bafyimage", metadata="bafytoken"))
    await events.emit(job.job_id, jobs_pb2.STAGE_PINNING, 80)  # late again
    await events.emit(job.job_id, jobs_pb2.STAGE_PINNED, 100, token_uri="ipfs://bafytoken")  # a duplicate
    await wait_for(settled)
    record = await store.get(job.job_id)
    assert (record.stage, record.state.progress) == (jobs_pb2.STAGE_PINNED, 100)
    assert record.state.token_uri == "ipfs://bafytoken"
    assert record.state.assets["image"] == "bafyimage", "a duplicate without assets erased them"


async def test_garbage_goes_to_the_dead_letter_queue_with_a_reason_and_the_consumer_keeps_going(
        broker, probe, status_side):
    store, _ = status_side
    topo = broker.topology
    await broker.publish(topo.events_exchange, "job.rendering", b"\xff\x00 not protobuf \x13\x37")
    await broker.publish(topo.events_exchange, "job.rendering", broker_pb2.JobEvent(stage=2))  # no job id

    first = await probe.take(topo.dead_queue(topo.status_queue))
    second = await probe.take(topo.dead_queue(topo.status_queue))
    reasons = sorted(m.headers["x-mintpipe-reason"] for m in (first, second))
    assert "job_id is empty" in reasons[1] or "job_id is empty" in reasons[0]
    assert any("not a valid mintpipe.v1.JobEvent" in r for r in reasons)
    assert first.body == b"\xff\x00 not protobuf \x13\x37" or second.body == b"\xff\x00 not protobuf \x13\x37"

    job, _ = await store.reserve("key2", "b" * 64, WALLET, "gen1", "{}")
    await EventPublisher(broker, "test").emit(job.job_id, jobs_pb2.STAGE_RENDERING, 5)

    async def rendering():
        return (await store.get(job.job_id)).stage == jobs_pb2.STAGE_RENDERING

    await wait_for(rendering)
    assert await probe.ready(topo.dead_queue(topo.status_queue)) == 0
