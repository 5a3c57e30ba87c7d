"""No orphan jobs, through the real gateway: the job is reserved in status, then RabbitMQ itself refuses its
render job (the exchange is gone, or nothing is bound to take it), so the client gets UNAVAILABLE and the job
waits, unpublished. A retry with the same idempotency key then publishes exactly one render message and marks
the job published; when the client never comes back the sweeper does it instead, and a late retry adds
nothing. The faults are made on the broker, over AMQP; nothing in the gateway is replaced."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest

from mintpipe.messaging.broker import Broker, declare_topology
from mintpipe.v1 import broker_pb2, gateway_pb2, jobs_pb2
from status.workers.sweeper import OrphanSweeper
from tests.support.gateway import running_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
WALLET = "0x000000000000000000000000000000000000dEaD"
KEY = "orphan-key-1"


def request(seed: int = 5) -> gateway_pb2.SubmitJobRequest:
    return gateway_pb2.SubmitJobRequest(settings_json=json.dumps({"seed": seed}), wallet=WALLET, idempotency_key=KEY)


async def delete_jobs_exchange(broker: Broker) -> None:
    channel = await broker.channel(1)
    await channel.exchange_delete(broker.topology.jobs_exchange)
    await channel.close()


async def unbind_render_queue(broker: Broker) -> None:
    channel = await broker.channel(1)
    queue = await channel.get_queue(broker.topology.render_queue, ensure=False)
    await queue.unbind(broker.topology.jobs_exchange, "render")
    await channel.close()


async def redeclare_topology(broker: Broker) -> None:
    """What an operator (or any service starting) does: declare the whole topology again, idempotently."""
    channel = await broker.channel(1)
    await declare_topology(channel, broker.topology)
    await channel.close()


# Both are refusals by RabbitMQ itself: publishing to a missing exchange closes the publishing channel with
# 404 NOT_FOUND (aio-pika's robust channel then reopens it), and a mandatory message nothing is bound to take
# comes back as basic.return. Either way no confirm, so the gateway must not answer with a job id.
FAULTS = {"exchange-missing": delete_jobs_exchange, "unroutable": unbind_render_queue}


async def refused_submission(gateway, store) -> str:
    """Submit while the broker refuses; return the id of the job that was reserved but not published."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gateway.SubmitJob(request(), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry with the same key" in info.value.details()
    (orphan,) = await store.unpublished_before(time.time() + 1)
    assert orphan.stage == jobs_pb2.STAGE_QUEUED and not orphan.published
    return orphan.job_id


async def submit_until_accepted(gateway, deadline: float = 30.0) -> gateway_pb2.SubmitJobResponse:
    """A client's retry loop: UNAVAILABLE means "try again with the same key" (the publishing channel may
    still be reopening after the broker closed it)."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            return await gateway.SubmitJob(request(), timeout=30)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > give_up:
                raise
        await asyncio.sleep(0.5)


async def render_messages(broker: Broker, probe) -> list[str]:
    # A moment for a stray duplicate to arrive, were there one.
    await asyncio.sleep(0.5)
    return [broker_pb2.RenderJob.FromString(m.body).job_id for m in await probe.drain(broker.topology.render_queue)]


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_retry_with_the_same_key_publishes_the_reserved_job_exactly_once(fault, broker, probe, tmp_path):
    async with running_gateway(broker, tmp_path) as side:
        await FAULTS[fault](broker)
        job_id = await refused_submission(side.gateway, side.store)
        assert await probe.ready(broker.topology.render_queue) == 0

        await redeclare_topology(broker)
        reply = await submit_until_accepted(side.gateway)
        assert reply.job_id == job_id and not reply.created, "the retry finds the reserved job"
        assert reply.stage == jobs_pb2.STAGE_QUEUED
        assert await render_messages(broker, probe) == [job_id]
        await side.service.close()  # the mark goes behind the answer, batched (gateway.service)
        assert (await side.store.get(job_id)).published
        assert await side.store.unpublished_before(time.time() + 1) == []

        again = await side.gateway.SubmitJob(request(), timeout=10)
        assert again.job_id == job_id
        assert await render_messages(broker, probe) == [], "a published job is not published again"


async def test_when_the_client_never_retries_the_sweeper_publishes_it_once(broker, probe, tmp_path):
    async with running_gateway(broker, tmp_path) as side:
        await unbind_render_queue(broker)
        job_id = await refused_submission(side.gateway, side.store)
        await redeclare_topology(broker)

        sweeper = OrphanSweeper(side.store, broker, orphan_after=0.0, interval=1)
        assert await sweeper.sweep_once() == 1
        assert await sweeper.sweep_once() == 0
        assert await render_messages(broker, probe) == [job_id]
        assert (await side.store.get(job_id)).published

        late = await side.gateway.SubmitJob(request(), timeout=10)
        assert late.job_id == job_id and not late.created
        assert await render_messages(broker, probe) == [], "the late retry adds no second render job"
