"""Disk use stays bounded: what the artifact store holds for a job leaves once nobody can need it.

- a pinned (or minted) job's rendered files: `pinned_grace` after it was pinned. The pins hold the content
  now; the grace lets duplicate pin jobs still in flight find the files (a pinner that meets a pinned job whose
  files are gone acks it, see pinner.consumer);
- a failed job's files: `failed_keep` after it failed, its replay window (replaying its pin job needs them);
- a folder whose job the store does not know (deleted by retention, or never reserved here): `failed_keep`
  after its last change;
- a multipart upload a killed renderer left unfinished (S3 engine): `failed_keep` after it began;
- an operator's cancel marker: `failed_keep` after the cancel. By then no delivery of the job's messages is
  left (the retry tiers give up after at most 36 minutes) and a replay skips the job anyway (the store keeps
  its cancellations).
Jobs still in progress are never touched. Runs in the status service, which holds the job store.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from mintpipe.objects.artifacts import Artifacts
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import jobs_pb2
from status.jobs.store import JobStore

log = get_logger("status.artifact_sweeper")
DONE = (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_MINTED)


@dataclass
class SweepResult:
    jobs_removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    markers_removed: int = 0
    uploads_aborted: int = 0


class ArtifactSweeper:
    def __init__(self, store: JobStore, artifacts: Artifacts, *, pinned_grace: float, failed_keep: float,
                 interval: float) -> None:
        self.store = store
        self.artifacts = artifacts
        self.pinned_grace = pinned_grace
        self.failed_keep = failed_keep
        self.interval = interval

    async def _expired(self, job_id: str, changed: float, now: float) -> bool:
        record = await self.store.get(job_id)
        if record is None:
            return changed < now - self.failed_keep
        if record.stage in DONE:
            return record.updated_at < now - self.pinned_grace
        if record.stage == jobs_pb2.STAGE_FAILED:
            return record.updated_at < now - self.failed_keep
        return False  # in progress

    async def sweep_once(self, now: float | None = None) -> SweepResult:
        now = time.time() if now is None else now
        result = SweepResult()
        for job_id, changed in await asyncio.to_thread(lambda: list(self.artifacts.jobs())):
            if await self._expired(job_id, changed, now):
                result.bytes_freed += await asyncio.to_thread(self.artifacts.remove_job, job_id)
                result.jobs_removed.append(job_id)
        for job_id, when in await asyncio.to_thread(lambda: list(self.artifacts.cancel_markers())):
            if when < now - self.failed_keep:
                await asyncio.to_thread(self.artifacts.remove_cancel_marker, job_id)
                result.markers_removed += 1
        # Uploads a killed renderer left half done (object store only): older than any live upload can be.
        result.uploads_aborted = await asyncio.to_thread(self.artifacts.abort_stale_uploads, now - self.failed_keep)
        if result.jobs_removed or result.markers_removed or result.uploads_aborted:
            log.info("artifacts swept", jobs=len(result.jobs_removed), freed_bytes=result.bytes_freed,
                     markers=result.markers_removed, uploads_aborted=result.uploads_aborted)
        return result

    async def run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:  # a busy store or a file vanishing under us: next round
                log.error("artifact sweep failed", error=repr(exc))
            await asyncio.sleep(self.interval)
