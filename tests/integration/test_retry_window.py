"""A backend outage longer than the old retry window (ten attempts over 12.5-17.4 minutes) fails nothing now:
the real pin stage, the real retry tiers and schedule, against the Pinata emulator answering 503 to everything
for the whole outage. Time is scaled down: every retry tier waits 1/100 of its seconds (Topology.retry_scale),
so the 20-minute outage lasts 12 s and the schedule's shortest span, 25.9 minutes, 15.5 s."""

from __future__ import annotations

import time

import pytest

from mintpipe.messaging.broker import Broker, Topology
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.pin_ledger import PinLedger
from mintpipe.v1 import broker_pb2, jobs_pb2
from pinner.backends import PinataBackend
from pinner.consumer import pin_consumer
from pinner.pinning import PinService
from tests.integration.test_pinner_consumer import rendered_pin_job
from tests.support.broker import QueueProbe, delete_topology
from tests.support.emulator import running_emulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SCALE = 0.01
OLD_WINDOW_MAX = 17.4 * 60  # seconds: the longest the old schedule ever waited in all
OUTAGE = 20 * 60  # seconds, unscaled


async def test_every_job_pins_through_an_outage_longer_than_the_old_retry_window(rabbit_url, broker_prefix, tmp_path):
    assert OUTAGE > OLD_WINDOW_MAX
    broker = Broker(rabbit_url, Topology(broker_prefix, retry_scale=SCALE), "test")
    await broker.connect(attempts=3)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    with running_emulator() as emu:
        backend = PinataBackend(emu.jwt, emu.url, emu.url)
        pins = PinService(backend, PinLedger(tmp_path / "pins.sqlite3", backend.name),
                          LocalIpfsStore(tmp_path / "ipfs"), rate_limit=10_000, rate_window=60, monthly_pins=None)
        consumer = pin_consumer(broker, artifacts, pins, prefetch=4)
        await consumer.start()
        probe = QueueProbe(broker)
        try:
            jobs = [rendered_pin_job(artifacts, seed=s) for s in (1, 2, 3)]
            emu.fault(status=503, for_seconds=OUTAGE * SCALE)
            began = time.monotonic()
            for job in jobs:
                await broker.publish(broker.topology.jobs_exchange, "pin", job)
            outcome: dict[str, int] = {}
            while len(outcome) < len(jobs):
                message = await probe.take(broker.topology.status_queue, timeout=60)
                event = broker_pb2.JobEvent.FromString(message.body)
                if event.stage in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_FAILED):
                    outcome[event.job_id] = event.stage
                    assert event.stage == jobs_pb2.STAGE_PINNED, event.error
            took = time.monotonic() - began
            log = emu.requests()
            refused = [r for r in log if r["status"] == 503]
            answered = [r for r in log if r["status"] == 200]
            # The jobs met the outage and were refused; nothing got through until it was over, and the retries
            # outlasted it.
            assert refused and answered
            assert answered[0]["at"] - refused[0]["at"] >= OUTAGE * SCALE * 0.95
            assert took >= OUTAGE * SCALE
            assert set(outcome) == {j.job_id for j in jobs}
        finally:
            await consumer.stop(2)
            await backend.aclose()
            await delete_topology(broker)
            await broker.close()
