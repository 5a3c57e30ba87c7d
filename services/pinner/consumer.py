"""The pin stage's consumer."""

from __future__ import annotations

import asyncio
import hashlib

from aio_pika.abc import AbstractIncomingMessage

from mintpipe.core.cid import cid_of_json
from mintpipe.core.stages import PIN_END, PIN_START, band, is_job_id
from mintpipe.messaging.broker import Broker
from mintpipe.messaging.consumer import JobCancelled, PermanentError, QueueConsumer
from mintpipe.messaging.events import EventPublisher
from mintpipe.objects.artifacts import ArtifactCorrupt, ArtifactMissing, Artifacts, was_cancelled, write_atomic
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import broker_pb2, jobs_pb2
from pinner.metadata import build_metadata
from pinner.pinning import PinService

log = get_logger(__name__)

REQUIRED_KINDS = ("image", "preview")
METADATA_FILE = "metadata.json"


def check_pin_job(job: broker_pb2.PinJob) -> str | None:
    if not is_job_id(job.job_id):
        return "job_id must be 32 hex digits"
    for name in ("scene", "settings_json", "wallet"):
        if not getattr(job, name):
            return f"{name} is empty"
    kinds = {a.kind for a in job.artifacts}
    missing = [k for k in REQUIRED_KINDS if k not in kinds]
    return f"artifacts missing: {', '.join(missing)}" if missing else None


class PinHandler:
    """Pins every asset, then the metadata, then announces `pinned` with the token URI.

    Ack policy: acks after all pins are done and the `pinned` event is confirmed by the broker. A
    redelivery uploads nothing twice: content ids are computed locally and looked up (pin ledger, then the
    backend's own list) before any upload, so replaying a job only re-announces the same CIDs.

    An operator's cancel (a marker in the artifact store) is honoured before each asset and again right before
    each upload request (after the lookups and rate-limit waits before it): acked, dropped, nothing more uploaded.
    """

    def __init__(self, broker: Broker, artifacts: Artifacts, pins: PinService) -> None:
        self.broker = broker
        self.artifacts = artifacts
        self.pins = pins
        self.events = EventPublisher(broker, "pinner")

    async def on_permanent(self, job: broker_pb2.PinJob, reason: str) -> None:
        await self.events.emit(job.job_id, jobs_pb2.STAGE_FAILED, 0, error=reason)

    async def on_retry(self, job, attempt: int, retry_in: int, reason: str) -> None:
        # The stage it waits in again; changes nothing in the job, only adds to its retry history.
        await self.events.emit(job.job_id, jobs_pb2.STAGE_RENDERED, 0, error=reason, attempt=attempt,
                               retry_in_s=retry_in)

    async def __call__(self, job: broker_pb2.PinJob, _message: AbstractIncomingMessage) -> None:
        if await was_cancelled(self.artifacts, job.job_id):
            raise JobCancelled
        if await self._announce_again(job):
            return
        await self.events.emit(job.job_id, jobs_pb2.STAGE_PINNING, PIN_START)
        keyvalues = {"job_id": job.job_id, "settings_hash": job.settings_hash}

        def cancelled() -> bool:
            return self.artifacts.is_cancelled(job.job_id)

        cids: dict[str, str] = {}
        steps = len(job.artifacts) + 1
        for done, artifact in enumerate(job.artifacts, start=1):
            if await was_cancelled(self.artifacts, job.job_id):  # an operator's cancel: upload nothing more
                raise JobCancelled
            # The local folder's file itself, or a private copy streamed from the object store; either way its
            # bytes were just checked against the manifest's sha256.
            copy = self.artifacts.verified_copy(artifact.key, artifact.sha256)
            path = await asyncio.to_thread(self._enter, copy, artifact)
            try:
                cids[artifact.kind] = await self.pins.pin(path, artifact.content_type, path.name, job.job_id,
                                                          {**keyvalues, "sha256": artifact.sha256}, cancelled)
            finally:
                await asyncio.to_thread(copy.__exit__, None, None, None)
            await self.events.emit(job.job_id, jobs_pb2.STAGE_PINNING, band(PIN_START, PIN_END, 100 * done / steps))

        _cid, body = cid_of_json(build_metadata(job, cids))
        with self.artifacts.workspace(job.job_id) as folder:
            meta_path = folder / METADATA_FILE
            await asyncio.to_thread(write_atomic, meta_path, body)
            if await was_cancelled(self.artifacts, job.job_id):
                raise JobCancelled
            meta_cid = await self.pins.pin(meta_path, "application/json", METADATA_FILE, job.job_id,
                                           {**keyvalues, "sha256": hashlib.sha256(body).hexdigest()}, cancelled)
        await self.pins.ledger.record_job_pinned(job.job_id, job.settings_hash)
        announced = {"image": cids.get("image", ""), "animation": cids.get("animation", ""),
                     "preview": cids.get("preview", ""), "metadata": meta_cid}
        await self.pins.ledger.record_job_result(job.job_id, f"ipfs://{meta_cid}", announced)
        assets = jobs_pb2.JobAssets(**announced)
        await self.events.emit(job.job_id, jobs_pb2.STAGE_PINNED, 100, assets=assets, token_uri=f"ipfs://{meta_cid}")
        log.info("pinned", token_uri=f"ipfs://{meta_cid}", **cids)

    async def _announce_again(self, job: broker_pb2.PinJob) -> bool:
        """A late duplicate of a job pinned earlier, whose rendered files were cleaned up since (the status
        service removes them once the job is pinned): announce what it was pinned with, upload nothing."""
        if await asyncio.to_thread(self.artifacts.has_job, job.job_id):
            return False
        done = await self.pins.ledger.job_result(job.job_id)
        if done is None:
            return False
        token_uri, assets = done
        await self.events.emit(job.job_id, jobs_pb2.STAGE_PINNED, 100, assets=jobs_pb2.JobAssets(**assets),
                               token_uri=token_uri)
        log.info("already pinned and its files cleaned up; announced again", token_uri=token_uri)
        return True

    @staticmethod
    def _enter(copy, artifact: broker_pb2.ArtifactRef):
        try:
            return copy.__enter__()
        except ValueError as exc:
            raise PermanentError(f"{artifact.kind}: {exc}") from None
        except (ArtifactMissing, ArtifactCorrupt) as exc:
            raise PermanentError(f"{artifact.kind}: {exc}; replay the render job") from None


def pin_consumer(broker: Broker, artifacts: Artifacts, pins: PinService, prefetch: int = 2) -> QueueConsumer:
    """The pin queue's consumer as every replica runs it (and the tests too)."""
    handler = PinHandler(broker, artifacts, pins)
    return QueueConsumer(broker, broker.topology.pin_queue, broker_pb2.PinJob, handler, prefetch=prefetch,
                         check=check_pin_job, on_permanent=handler.on_permanent,
                         on_retry=handler.on_retry)
