"""Consumers ack only after their onward publish is confirmed, checked by making the broker refuse it: a queue
bound beside the real one with a length limit of 0 that rejects publishes, so RabbitMQ answers the publish
with basic.nack. The stage must not ack as done: its message waits in a retry tier and comes back, and once
the broker takes the publish again the job goes on (and nothing is uploaded twice)."""

from __future__ import annotations

import contextlib

import pytest

from mintpipe.messaging.broker import BrokerUnavailable
from mintpipe.v1 import broker_pb2, jobs_pb2
from tests.integration.test_pinner_consumer import rendered_pin_job
from tests.integration.test_renderer_consumer import render_job
from tests.support.broker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@contextlib.asynccontextmanager
async def refusing(broker, exchange: str, routing_key: str):
    """While inside, every publish to `exchange` with `routing_key` is refused (nacked) by the broker."""
    channel = await broker.channel(1)
    name = f"{broker.topology.prefix}.refuse.{routing_key}"
    queue = await channel.declare_queue(name, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    await queue.bind(exchange, routing_key=routing_key)
    try:
        yield
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await channel.close()


class PublishLog:
    """Records what the broker answered to each publish with a given routing key (a spy on the real Broker)."""

    def __init__(self, broker, routing_key: str) -> None:
        self.outcomes: list[str] = []
        real = broker.publish

        async def publish(exchange, key, payload, **kw):
            try:
                await real(exchange, key, payload, **kw)
            except BrokerUnavailable:
                if key == routing_key:
                    self.outcomes.append("refused")
                raise
            if key == routing_key:
                self.outcomes.append("confirmed")

        broker.publish = publish


async def test_the_renderer_does_not_ack_a_job_whose_pin_job_the_broker_refused(broker, probe, renderer):
    consumer, _artifacts = renderer
    topo = broker.topology
    log = PublishLog(broker, "pin")
    job = render_job(seed=51, frames=10, size=128)
    async with refusing(broker, topo.jobs_exchange, "pin"):
        await broker.publish(topo.jobs_exchange, "render", job)
        await wait_for(lambda: "refused" in log.outcomes, timeout=60)
        await wait_for(lambda: consumer.inflight == 0, timeout=30)
    # Refusal lifted: the job comes back from its retry tier and is handed over, confirmed this time. Had the
    # refused attempt been acked, nothing would ever try again.
    await wait_for(lambda: "confirmed" in log.outcomes, timeout=60)
    await wait_for(lambda: consumer.inflight == 0, timeout=30)
    assert log.outcomes[0] == "refused" and log.outcomes[-1] == "confirmed", log.outcomes
    pins = await probe.drain(topo.pin_queue)
    assert {broker_pb2.PinJob.FromString(m.body).job_id for m in pins} == {job.job_id}
    assert await probe.ready(topo.render_queue) == 0
    assert await probe.ready(topo.dead_queue(topo.render_queue)) == 0


async def test_the_pinner_does_not_ack_a_job_whose_pinned_event_the_broker_refused(broker, probe, pinner):
    artifacts, _store, pins = pinner
    topo = broker.topology
    log = PublishLog(broker, "job.pinned")
    job = rendered_pin_job(artifacts, seed=52)
    async with refusing(broker, topo.events_exchange, "job.pinned"):
        await broker.publish(topo.jobs_exchange, "pin", job)
        # Uploaded, but `pinned` was refused: the pin job is not done; it waits for a retry.
        await wait_for(lambda: "refused" in log.outcomes, timeout=60)
        assert pins.counts["uploads"] == 4
    await wait_for(lambda: "confirmed" in log.outcomes, timeout=60)
    assert log.outcomes[0] == "refused" and log.outcomes[-1] == "confirmed", log.outcomes
    events = [broker_pb2.JobEvent.FromString(m.body) for m in await probe.drain(topo.status_queue)]
    pinned = [e for e in events if e.stage == jobs_pb2.STAGE_PINNED]
    assert pinned and {e.job_id for e in pinned} == {job.job_id} and len({e.token_uri for e in pinned}) == 1
    assert pins.counts["uploads"] == 4, "the retry uploaded again"
    await wait_for(lambda: _equals(probe.ready(topo.pin_queue), 0), timeout=10)
    assert await probe.ready(topo.dead_queue(topo.pin_queue)) == 0


async def _equals(value, expected) -> bool:
    return await value == expected
