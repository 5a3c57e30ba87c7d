"""The events consumer: every JobEvent into the job store."""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage

from mintpipe.core.stages import STAGE_NAMES, is_job_id, stage_name
from mintpipe.messaging.broker import Broker
from mintpipe.messaging.consumer import QueueConsumer
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import broker_pb2
from status import metrics
from status.jobs.bus import JobBus
from status.jobs.history import note_retry
from status.jobs.mints import apply_mint_fact
from status.jobs.service import apply_and_announce
from status.jobs.store import JobStore

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


class EventApplier:
    """Acks after the event is committed to the job store. Applying is idempotent and order-proof
    (status.jobs.transitions), so a redelivered or late event changes nothing: at-least-once delivery,
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
            # The minter's word on the chain (status.jobs.mints): minted, undone, a relay sent or failed.
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
