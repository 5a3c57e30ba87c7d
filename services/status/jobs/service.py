"""Changing a job and telling its watchers, in one call: the events consumer, the dead-letter watch and the
operators' actions all move jobs through here."""

from __future__ import annotations

from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.bus import JobBus
from status.jobs.history import note_stage
from status.jobs.records import JobRecord
from status.jobs.store import JobStore


async def apply_and_announce(store: JobStore, bus: JobBus, event: broker_pb2.JobEvent) -> JobRecord | None:
    """Commit an event to the job store and, when it changed the job, tell the job's watchers (SSE, Watch)."""
    record, before = await store.apply_changed(event)
    if record is None:
        return None
    if record.stage != before:
        # The operators' stage history (status.jobs.history): which replica moved the job, and when. Only the one
        # applier whose write changed the stage records it (progress within a stage costs no history statement).
        await note_stage(store, record.job_id, record.stage, event.source, event.replica, record.state.error,
                         changed=True)
    bus.publish(record)  # progress within a stage too: watchers see it as it happens
    return record


async def fail_job(store: JobStore, bus: JobBus, job_id: str, error: str, source: str) -> JobRecord | None:
    """Mark a job failed with a reason a person can act on (changes nothing if it already finished)."""
    event = broker_pb2.JobEvent(job_id=job_id, stage=jobs_pb2.STAGE_FAILED, error=error, source=source)
    return await apply_and_announce(store, bus, event)
