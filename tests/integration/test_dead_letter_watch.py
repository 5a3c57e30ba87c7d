"""A job whose message the broker itself dead-letters (delivery limit reached: every replica that took it
stopped before acking) is failed in the store with a reason, not left mid-stage forever; the original waits in
`<queue>.dead` for an operator."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from mintpipe.messaging.broker import DELIVERY_LIMIT, REASON_HEADER
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.bus import JobBus
from status.workers.dead_letters import DeadLetterWatch
from tests.support.broker import wait_for

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture
async def watch(broker, status_side):
    store, _consumer = status_side
    watcher = DeadLetterWatch(broker, store, JobBus())
    await watcher.start()
    yield store
    await watcher.stop()


async def crash_every_delivery(broker, queue: str) -> int:
    """Take the message and hand it back unacked, as a replica killed mid-job does, until the broker gives up."""
    channel = await broker.channel(1)
    q = await channel.get_queue(queue, ensure=False)
    deliveries = 0
    while (message := await q.get(no_ack=False, fail=False, timeout=5)) is not None:
        deliveries += 1
        await message.nack(requeue=True)
        assert deliveries <= DELIVERY_LIMIT + 1, "the broker never dead-lettered it"
    await channel.close()
    return deliveries


async def test_a_job_the_broker_dead_letters_is_failed_with_a_reason_and_kept_for_replay(broker, probe, watch):
    store = watch
    job, _ = await store.reserve("dead-1", "c" * 64, WALLET, "gen1", json.dumps({"seed": 1}))
    await broker.publish(broker.topology.jobs_exchange, "render", broker_pb2.RenderJob(
        job_id=job.job_id, scene="gen1", settings_json=json.dumps({"seed": 1}), wallet=WALLET))

    deliveries = await crash_every_delivery(broker, broker.topology.render_queue)
    assert deliveries == DELIVERY_LIMIT + 1

    record = await wait_for(lambda: _failed(store, job.job_id), timeout=15)
    error = record.state.error
    assert f"the broker gave up on it (delivery_limit) after {DELIVERY_LIMIT + 1} deliveries" in error, error
    assert "can replay it" in error
    topo = broker.topology
    original = await probe.take(topo.dead_queue(topo.render_queue), timeout=10)
    assert broker_pb2.RenderJob.FromString(original.body).job_id == job.job_id
    assert await wait_for(lambda: _empty(probe, topo.dead_watch_queue))


async def test_our_own_dead_letters_are_left_to_the_stage_that_made_them(broker, probe, watch):
    store = watch
    job, _ = await store.reserve("dead-2", "d" * 64, WALLET, "gen1", json.dumps({"seed": 2}))
    # A parked job (bad credentials, say) is dead-lettered with our reason and deliberately not failed.
    await broker.publish(broker.topology.dead_letter_exchange, broker.topology.pin_queue,
                         broker_pb2.PinJob(job_id=job.job_id, scene="gen1", wallet=WALLET),
                         headers={REASON_HEADER: "pinata: 401 bad credentials"})
    # The confirmed publish put a copy in the watch queue; once it is gone the watch has seen it.
    assert await wait_for(lambda: _empty(probe, broker.topology.dead_watch_queue))
    await asyncio.sleep(0.5)
    assert (await store.get(job.job_id)).stage == jobs_pb2.STAGE_QUEUED
    assert await probe.ready(broker.topology.dead_queue(broker.topology.pin_queue)) == 1


async def _failed(store, job_id):
    record = await store.get(job_id)
    return record if record.stage == jobs_pb2.STAGE_FAILED else None


async def _empty(probe, queue):
    return await probe.ready(queue) == 0


async def test_a_job_that_waited_in_a_retry_tier_then_crash_looped_is_failed_too(broker, probe, watch):
    # The pinners' routine: a rate-limit wait (retry_later stamps our reason header, and the retry tier's expiry
    # an `expired` x-death). Then every replica that takes it dies: the broker dead-letters it by itself.
    store = watch
    topo = broker.topology
    job, _ = await store.reserve("dead-3", "e" * 64, WALLET, "gen1", json.dumps({"seed": 3}))
    await broker.publish(topo.jobs_exchange, "pin", broker_pb2.PinJob(job_id=job.job_id, scene="gen1", wallet=WALLET))
    channel = await broker.channel(1)
    queue = await channel.get_queue(topo.pin_queue, ensure=False)
    first = await queue.get(no_ack=False, timeout=5)
    assert await broker.retry_later(topo.pin_queue, first, 1.0, 1, "pinata: shared rate limit reached") == 1
    await channel.close()
    back = await wait_for(lambda: probe.ready(topo.pin_queue), timeout=15)
    assert back == 1, "the message did not come back from its retry tier"

    assert await crash_every_delivery(broker, topo.pin_queue) == DELIVERY_LIMIT + 1
    record = await wait_for(lambda: _failed(store, job.job_id), timeout=15)
    assert "the broker gave up on it (delivery_limit)" in record.state.error, record.state.error
    original = await probe.take(topo.dead_queue(topo.pin_queue), timeout=10)
    assert original.headers[REASON_HEADER] == "pinata: shared rate limit reached"  # stale, and not what decided
    assert original.headers["x-first-death-reason"] == "expired"


class UnwellStore:
    """The real store, but its writes fail (a full disk, a locked file) until healed; counts the attempts."""

    def __init__(self, store) -> None:
        self.store = store
        self.failing = True
        self.attempts = 0

    async def apply_changed(self, event):  # what the events path calls (status.jobs.service.apply_and_announce)
        self.attempts += 1
        if self.failing:
            raise sqlite3.OperationalError("disk I/O error")
        return await self.store.apply_changed(event)

    async def apply(self, event):
        record, _before = await self.apply_changed(event)
        return record

    def __getattr__(self, name):
        return getattr(self.store, name)


async def test_while_the_store_fails_the_watch_backs_off_instead_of_spinning_and_loses_nothing(
        broker, probe, status_side):
    store, _consumer = status_side
    unwell = UnwellStore(store)
    watcher = DeadLetterWatch(broker, unwell, JobBus())
    await watcher.start()
    try:
        job, _ = await store.reserve("dead-4", "f" * 64, WALLET, "gen1", json.dumps({"seed": 4}))
        await broker.publish(broker.topology.jobs_exchange, "render", broker_pb2.RenderJob(
            job_id=job.job_id, scene="gen1", settings_json=json.dumps({"seed": 4}), wallet=WALLET))
        await crash_every_delivery(broker, broker.topology.render_queue)
        await wait_for(lambda: unwell.attempts >= 1, timeout=10)
        await asyncio.sleep(4)
        # Handed straight back, it came again thousands of times in these seconds; now 0.5, 1, 2 s apart.
        assert unwell.attempts <= 5, f"{unwell.attempts} attempts in 4 s: a tight requeue loop"
        unwell.failing = False
        record = await wait_for(lambda: _failed(store, job.job_id), timeout=30)
        assert "delivery_limit" in record.state.error
    finally:
        await watcher.stop()
