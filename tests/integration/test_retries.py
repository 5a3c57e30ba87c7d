"""Transient failures wait in a retry tier (not in the consumer, not at the head of the queue) and come back;
exhausted ones are dead-lettered with the last reason."""

from __future__ import annotations

import time

import pytest

from mintpipe.messaging.broker import ATTEMPT_HEADER, REASON_HEADER
from mintpipe.messaging.consumer import QueueConsumer, TransientError
from mintpipe.v1 import broker_pb2, jobs_pb2
from tests.support.broker import wait_for

pytestmark = pytest.mark.integration


class Flaky:
    """Fails the first `failures` deliveries of each job with `error`, then succeeds."""

    def __init__(self, failures: int, error: TransientError | None = None) -> None:
        self.failures = failures
        self.error = error or TransientError("backend answered 503", retry_after=0.5)
        self.calls: list[tuple[str, float, int]] = []
        self.failed: list[str] = []

    async def __call__(self, event: broker_pb2.JobEvent, message) -> None:
        attempt = int((message.headers or {}).get(ATTEMPT_HEADER, 0))
        self.calls.append((event.job_id, time.monotonic(), attempt))
        if sum(1 for c in self.calls if c[0] == event.job_id) <= self.failures:
            raise self.error

    async def on_permanent(self, event, reason: str) -> None:
        self.failed.append(reason)


async def _consumer(broker, handler, max_attempts):
    consumer = QueueConsumer(broker, broker.topology.status_queue, broker_pb2.JobEvent, handler, prefetch=4,
                             on_permanent=handler.on_permanent, max_attempts=max_attempts)
    await consumer.start()
    return consumer


async def test_a_transient_failure_is_retried_later_without_blocking_the_next_message(broker, probe):
    handler = Flaky(failures=1)
    consumer = await _consumer(broker, handler, max_attempts=4)
    topo = broker.topology
    await broker.publish(topo.events_exchange, "job.rendering", broker_pb2.JobEvent(job_id="a" * 32, stage=2))
    await broker.publish(topo.events_exchange, "job.rendering", broker_pb2.JobEvent(job_id="b" * 32, stage=2))
    await wait_for(lambda: sum(1 for c in handler.calls if c[0] == "b" * 32) == 2, timeout=30)
    await wait_for(lambda: len([c for c in handler.calls if c[0] == "a" * 32]) == 2, timeout=30)
    a_calls = [c for c in handler.calls if c[0] == "a" * 32]
    assert a_calls[1][1] - a_calls[0][1] >= 0.9, "came back before its retry tier elapsed"
    assert a_calls[1][2] == 1, "attempt count not carried"
    first_b = next(c for c in handler.calls if c[0] == "b" * 32)
    assert first_b[1] < a_calls[1][1], "the second message waited behind the failing one"
    await wait_for(lambda: consumer.inflight == 0)
    assert await probe.ready(topo.dead_queue(topo.status_queue)) == 0
    assert handler.failed == []
    await consumer.stop(1)


async def test_exhausted_retries_dead_letter_with_the_last_reason(broker, probe):
    handler = Flaky(failures=100)
    consumer = await _consumer(broker, handler, max_attempts=2)
    topo = broker.topology
    await broker.publish(topo.events_exchange, "job.pinning",
                         broker_pb2.JobEvent(job_id="c" * 32, stage=jobs_pb2.STAGE_PINNING))
    dead = await probe.take(topo.dead_queue(topo.status_queue), timeout=30)
    assert dead.headers[REASON_HEADER] == "gave up after 2 attempts: backend answered 503"
    assert handler.failed == ["gave up after 2 attempts: backend answered 503"]
    assert len(handler.calls) == 2
    await consumer.stop(1)


async def test_waits_for_our_own_rate_limit_do_not_use_up_attempts(broker, probe):
    # Waiting for our own shared rate limit: not the backend's fault.
    handler = Flaky(failures=3, error=TransientError("shared rate limit reached", retry_after=0.5, counts=False))
    consumer = await _consumer(broker, handler, max_attempts=2)
    topo = broker.topology
    await broker.publish(topo.events_exchange, "job.pinning",
                         broker_pb2.JobEvent(job_id="d" * 32, stage=jobs_pb2.STAGE_PINNING))
    await wait_for(lambda: len(handler.calls) == 4, timeout=30)
    await wait_for(lambda: consumer.inflight == 0)
    assert [c[2] for c in handler.calls] == [0, 0, 0, 0], "a wait of our own making was counted as an attempt"
    assert handler.failed == [] and await probe.ready(topo.dead_queue(topo.status_queue)) == 0
    await consumer.stop(1)
