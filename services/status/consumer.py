"""The events consumer: every JobEvent into the job store."""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage

from mintpipe.broker import Broker
from mintpipe.consumer import QueueConsumer
from mintpipe.events import STAGE_NAMES, is_job_id, stage_name
from mintpipe.log import get_logger
from mintpipe.v1 import broker_pb2, jobs_pb2
from status import metrics
from status.bus import JobBus
from status.mints import apply_mint_fact
from status.ops_store import note_retry, note_stage
from status.records import JobRecord
from status.store import JobStore

log = get_logger("status.consumer")


def check_event(event: broker_pb2.JobEvent) -> str | None:
    if not event.job_id:
        return "job_id is empty"
    if not is_job_id(event.job_id):
        return "job_id must be 32 hex digits"
    if event.stage not in STAGE_NAMES:
        return f"stage {event.stage} is not a known stage"
    if event.progress > 100:
        return f"progress {event.progress} is over 100"
    return None


async def apply_and_announce(store: JobStore, bus: JobBus, event: broker_pb2.JobEvent) -> JobRecord | None:
    """Commit an event to the job store and, when it changed the job, tell the job's watchers (SSE, Watch)."""
    record, before = await store.apply_changed(event)
    if record is None:
        return None
    if record.stage != before:
        # The operators' stage history (status.ops_store): which replica moved the job, and when. Only the one
        # applier whose write changed the stage records it (progress within a stage costs no history statement).
        await note_stage(store, record.job_id, record.stage, event.source, event.replica, record.state.error,
                         changed=True)
    bus.publish(record)  # progress within a stage too: watchers see it as it happens
    return record


async def fail_job(store: JobStore, bus: JobBus, job_id: str, error: str, source: str) -> JobRecord | None:
    """Mark a job failed with a reason a person can act on (changes nothing if it already finished)."""
    event = broker_pb2.JobEvent(job_id=job_id, stage=jobs_pb2.STAGE_FAILED, error=error, source=source)
    return await apply_and_announce(store, bus, event)


class EventApplier:
    """Acks after the event is committed to the job store. Applying is idempotent and order-proof
    (status.transitions), so a redelivered or late event changes nothing: at-least-once delivery,
    exactly-once effect."""

    def __init__(self, store: JobStore, bus: JobBus) -> None:
        self.store = store
        self.bus = bus

    async def __call__(self, event: broker_pb2.JobEvent, _message: AbstractIncomingMessage) -> None:
        if event.attempt:
            # A stage announcing a transient failure: history for operators; the job itself does not change.
            await note_retry(self.store, event.job_id, event.stage, event.attempt, event.retry_in_s, event.error,
                             event.source, event.replica)
            return
        if event.HasField("mint") and event.mint.kind:
            # The minter's word on the chain (status.mints): minted, undone, a relay sent or failed.
            await apply_mint_fact(self.store, self.bus, event)
            return
        record = await apply_and_announce(self.store, self.bus, event)
        (metrics.EVENTS_DROPPED if record is None else metrics.EVENTS_APPLIED.labels(stage_name(event.stage))).inc()
        if record is None:
            log.debug("event changed nothing", stage=stage_name(event.stage), progress=event.progress)
            return
        log.info("job updated", stage=stage_name(record.stage), progress=record.state.progress,
                 source=event.source)


def events_consumer(broker: Broker, store: JobStore, bus: JobBus, prefetch: int = 64) -> QueueConsumer:
    """The status service's consumer of every job event (and the tests')."""
    return QueueConsumer(broker, broker.topology.status_queue, broker_pb2.JobEvent, EventApplier(store, bus),
                         prefetch=prefetch, check=check_event)
