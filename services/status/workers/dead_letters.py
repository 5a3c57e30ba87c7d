"""Jobs the broker gave up on: failed in the store with a reason, instead of left `rendering` forever."""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from google.protobuf.message import DecodeError

from mintpipe.core.stages import is_job_id
from mintpipe.messaging.broker import DELIVERY_LIMIT, REASON_HEADER, Broker, broker_dead_letter_reason
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import broker_pb2
from status.jobs.bus import JobBus
from status.jobs.history import note_dead_letter
from status.jobs.service import fail_job
from status.jobs.store import JobStore

log = get_logger("status.dead_letters")

REQUEUE_BACKOFF_FIRST = 0.5  # seconds before handing back a dead letter the store could not take
REQUEUE_BACKOFF_CAP = 30.0


def requeue_delay(message: AbstractIncomingMessage) -> float:
    raw = (message.headers or {}).get("x-delivery-count", 0)
    try:
        deliveries = max(int(raw), 0)
    except (TypeError, ValueError):
        deliveries = 0
    return min(REQUEUE_BACKOFF_CAP, REQUEUE_BACKOFF_FIRST * 2 ** min(deliveries, 16))

JOB_TYPES = {broker_pb2.RenderJob.DESCRIPTOR.full_name: broker_pb2.RenderJob,
             broker_pb2.PinJob.DESCRIPTOR.full_name: broker_pb2.PinJob}


def broker_reason(why: str, stage_queue: str) -> str:
    times = f" after {DELIVERY_LIMIT + 1} deliveries" if why == "delivery_limit" else ""
    return (f"{stage_queue}: the broker gave up on it ({why}){times}: every replica that took it stopped before "
            f"finishing (crashed, killed or drained). Parked in {stage_queue}.dead; an operator can replay it.")


class DeadLetterWatch:
    """Consumes a copy of every message dead-lettered from the render and pin queues (the operator's
    `<queue>.dead` keeps the original for replay).

    Our own dead letters (stamped by Broker.dead_letter): their job was failed at once (or parked on purpose) by
    the stage that dead-lettered them, so they are only acked. A message the broker dead-lettered by itself (its
    delivery limit reached), told apart by what the broker writes (x-death, see broker_dead_letter_reason) and
    not by our reason header, which any earlier retry left on it: nobody sent a `failed` event, so its job is
    failed here, with a reason a person can act on.

    Ack policy: acks after the failure is committed to the job store (or it is clear there is nothing to do). A
    redelivery applies the same failure again, which changes nothing (transitions never go backwards).
    """

    def __init__(self, broker: Broker, store: JobStore, bus: JobBus) -> None:
        self.broker = broker
        self.store = store
        self.bus = bus
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None

    async def start(self) -> None:
        channel = await self.broker.channel(16)
        # Passive on the robust channel, so the consumer is restored after a broker restart (see QueueConsumer).
        self._queue = await channel.declare_queue(self.broker.topology.dead_watch_queue, passive=True)
        self._tag = await self._queue.consume(self._on_message, no_ack=False)

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # the channel may already be gone
                log.warning("cancel failed", error=str(exc))

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        job_type = JOB_TYPES.get(message.type or "")
        why = broker_dead_letter_reason(message.headers)
        await self._remember(message, job_type, why)
        if why is None or job_type is None:
            await message.ack()  # ours (already accounted for) or not a job at all (the original stays in .dead)
            return
        try:
            job_id = job_type.FromString(message.body).job_id
        except DecodeError:
            job_id = ""
        if not is_job_id(job_id):
            await message.ack()
            return
        stage_queue = message.routing_key or "a work queue"
        reason = broker_reason(why, stage_queue)
        try:
            await fail_job(self.store, self.bus, job_id, reason, "broker")
        except Exception as exc:  # the store is unwell: hand it back, it comes again
            # ...but not at once: the watch queue has no delivery limit (nothing may drop a job's failure), so an
            # immediate requeue would spin as fast as the broker redelivers while the store is down. Waiting
            # doubles with each delivery (the quorum queue counts them), up to REQUEUE_BACKOFF_CAP.
            delay = requeue_delay(message)
            log.error("could not record a dead-lettered job; handing it back", job_id=job_id, error=repr(exc),
                      retry_in=delay)
            await asyncio.sleep(delay)
            await message.nack(requeue=True)
            return
        log.error("job failed: the broker dead-lettered it", job_id=job_id, reason=reason)
        await message.ack()

    async def _remember(self, message: AbstractIncomingMessage, job_type, why: str | None) -> None:
        """The dead-letter history operators see on a job's page (status.jobs.history); it outlives the replay."""
        if job_type is None:
            return
        try:
            job_id = job_type.FromString(message.body).job_id
        except DecodeError:
            return
        if not is_job_id(job_id):
            return
        headers = message.headers or {}
        stage_queue = message.routing_key or "a work queue"
        reason = broker_reason(why, stage_queue) if why else headers.get(REASON_HEADER, "dead-lettered")
        by = headers.get("x-mintpipe-dead-lettered-by") or "broker"
        queue = (message.routing_key or "").rsplit(".", 1)[-1]
        try:
            await note_dead_letter(self.store, job_id, queue, message.message_id or "", str(reason), str(by))
        except Exception as exc:  # history is for people; never let it hold up the failure itself
            log.warning("could not record dead-letter history", job_id=job_id, error=repr(exc))
