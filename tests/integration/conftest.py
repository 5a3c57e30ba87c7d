"""Real RabbitMQ (the test session's own vhost), a fresh queue prefix per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mintpipe.broker import RETRY_TIERS, Broker, Topology
from tests.support.broker import QueueProbe


@pytest.fixture
async def broker(rabbit_url: str, broker_prefix: str) -> AsyncIterator[Broker]:
    b = Broker(rabbit_url, Topology(broker_prefix), "test")
    await b.connect(attempts=3)
    yield b
    # Drop this test's queues and exchanges; the vhost goes at session end anyway.
    channel = await b.channel(1)
    topo = b.topology
    for queue in topo.work_queues:
        await channel.queue_delete(queue)
        await channel.queue_delete(topo.dead_queue(queue))
        for seconds in RETRY_TIERS:
            await channel.queue_delete(topo.retry_queue(queue, seconds))
    for exchange in (topo.jobs_exchange, topo.events_exchange, topo.dead_letter_exchange):
        await channel.exchange_delete(exchange)
    await b.close()


@pytest.fixture
async def probe(broker: Broker) -> QueueProbe:
    return QueueProbe(broker)


