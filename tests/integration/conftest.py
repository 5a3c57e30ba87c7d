"""Real RabbitMQ (the test session's own vhost), a fresh queue prefix per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mintpipe.messaging.broker import Broker, Topology
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.pin_ledger import PinLedger
from pinner.backends import LocalBackend
from pinner.consumer import pin_consumer
from pinner.pinning import PinService
from renderer.consumer import render_consumer
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from status.workers.consumer import events_consumer
from tests.support.broker import QueueProbe, delete_topology
from tests.support.chain import TestChain
from tests.support.chain_status import Status, running_status


@pytest.fixture
async def broker(rabbit_url: str, broker_prefix: str) -> AsyncIterator[Broker]:
    b = Broker(rabbit_url, Topology(broker_prefix), "test")
    await b.connect(attempts=3)
    yield b
    await delete_topology(b)  # this test's queues and exchanges; the vhost goes at session end anyway
    await b.close()


@pytest.fixture
def amqp(rabbit_url: str, broker_prefix: str) -> tuple[str, str]:
    """(URL, prefix): the test's broker, for services started in process (tests.support.chain_status)."""
    return rabbit_url, broker_prefix


@pytest.fixture
async def probe(broker: Broker) -> QueueProbe:
    return QueueProbe(broker)


# Each stage's consumer, made by the same factory its service runs, on this test's queues and data folder.

@pytest.fixture
async def renderer(broker: Broker, tmp_path):
    """(consumer, artifact store) of a render replica."""
    artifacts = ArtifactStore(tmp_path / "artifacts")
    consumer = render_consumer(broker, artifacts)
    await consumer.start()
    yield consumer, artifacts
    await consumer.stop(5)


@pytest.fixture
async def pinner(broker: Broker, tmp_path):
    """(artifact store, local IPFS store, pin service) of a pin replica on the embedded local backend."""
    artifacts = ArtifactStore(tmp_path / "artifacts")
    store = LocalIpfsStore(tmp_path / "ipfs")
    pins = PinService(LocalBackend(store), PinLedger(tmp_path / "pins.sqlite3", "local"), store,
                      rate_limit=100, rate_window=60, monthly_pins=None)
    consumer = pin_consumer(broker, artifacts, pins)
    await consumer.start()
    yield artifacts, store, pins
    await consumer.stop(5)


@pytest.fixture
async def status_side(broker: Broker, tmp_path):
    """(job store, consumer) of the status service's event consumer."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    consumer = events_consumer(broker, store, JobBus(), prefetch=16)
    await consumer.start()
    yield store, consumer
    await consumer.stop(1)
    await store.close()


@pytest.fixture
async def status(chain: TestChain, tmp_path, amqp) -> AsyncIterator[Status]:
    """A minter and the status service (store, events consumer, HTTP app) on the module's anvil: the chain tests'."""
    async with running_status(chain, tmp_path, amqp=amqp) as running:
        yield running
