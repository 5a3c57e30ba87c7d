"""The render stage's consumer."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

from aio_pika.abc import AbstractIncomingMessage

from mintpipe.core.scenes import SettingsError, settings_hash, validate_settings
from mintpipe.core.stages import RENDER_END, RENDER_START, band, is_job_id
from mintpipe.messaging.broker import Broker
from mintpipe.messaging.consumer import MAX_ATTEMPTS, JobCancelled, PermanentError, QueueConsumer, TransientError
from mintpipe.messaging.events import EventPublisher
from mintpipe.objects.artifacts import Artifacts, was_cancelled
from mintpipe.runtime.log import get_logger
from mintpipe.runtime.metrics import ASSET_BYTES, DRAW_SECONDS, ENCODE_SECONDS, RENDER_CPU_SECONDS, RENDER_SECONDS
from mintpipe.v1 import broker_pb2, jobs_pb2
from renderer.render import RENDERER_VERSION, RenderCancelled, render_job

log = get_logger(__name__)

# Seconds between looks for an operator's cancel marker while rendering (one stat() each). bench/cancel.py measured
# marker -> job dropped at 163/312/488 ms (min/median/max) with 0.5 s: too close to the promised half second, since
# a 1024² frame adds ~60 ms. With 0.25 s: 46/180/222 ms.
CANCEL_POLL = 0.25
# Least seconds between two progress events of one render. Each event is a confirmed publish here, a quorum-queue
# message in RabbitMQ and a commit plus an SSE fan-out in the status service, all on the same cores as the renders:
# the default job reported every 5 frames, ~20 events in 0.6-1.5 s, which no progress bar needs. At 0.25 s it sends
# 3-7, still four a second while a collector watches. bench/load.py, 25 jobs, 2 replicas: the status service's CPU
# 0.091-0.103 -> 0.061-0.074 core-s a job.
PROGRESS_INTERVAL = 0.25
# Well below RabbitMQ's default consumer timeout (1800 s), and 40× the largest render the schema allows.
DEFAULT_DEADLINE = 600.0


def threads_for_now(most: int) -> int:
    """Threads for the next render: `most` while the machine has a core to spare, else 1 (the bytes are the same).

    The extra threads split each frame in bands and wait for each other at every frame; they only pay when a core
    would otherwise idle. bench/load.py, 25 jobs, 2 replicas on 2 cores, back to back (load average 9-12): 1.51
    core-s a job in the renderers with 2 threads each, 1.29 with 1 (max to pinned 36.3 s -> 31.8 s). The 1-minute
    load average stands for "busy": it is what the kernel already keeps, costs nothing to read, and does not swing
    between two jobs of one burst."""
    if most <= 1:
        return most
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return most if os.getloadavg()[0] < cores else 1


def check_render_job(job: broker_pb2.RenderJob) -> str | None:
    if not is_job_id(job.job_id):
        return "job_id must be 32 hex digits"
    for name in ("scene", "settings_json", "wallet"):
        if not getattr(job, name):
            return f"{name} is empty"
    return None


def observe_render(seconds: float, before: os.times_result, after: os.times_result, assets,
                   timings: dict[str, float]) -> None:
    RENDER_SECONDS.observe(seconds)
    if timings:  # empty when the assets were already complete (a redelivery): nothing was drawn or encoded
        DRAW_SECONDS.observe(timings["draw"])
        for encoder in ("gif", "mp4", "png"):
            ENCODE_SECONDS.labels(encoder).observe(timings[encoder])
    RENDER_CPU_SECONDS.labels("replica").inc(max(after.user + after.system - before.user - before.system, 0.0))
    RENDER_CPU_SECONDS.labels("ffmpeg").inc(max(after.children_user + after.children_system
                                                - before.children_user - before.children_system, 0.0))
    for asset in assets:
        ASSET_BYTES.labels(asset.kind).inc(asset.size)


class RenderHandler:
    """Renders a job and hands it to the pin stage.

    Ack policy: acks after the assets are complete in the artifact store (manifest written last), the
    `rendered` event and the pin job are both confirmed by the broker. A redelivery (crash, kill -9,
    broker restart) re-renders into the same folder, byte-identical because rendering is deterministic,
    or skips straight to the hand-over when the manifest shows the assets complete: idempotent by job id.

    RabbitMQ closes the channel of a consumer that holds a delivery unacked past its consumer timeout (30 min
    by default), which would redeliver the job mid-render. A render therefore has a deadline below that
    (`deadline` seconds): past it the render stops within a frame and the job goes to a retry tier with a
    reason, as a transient failure. The largest render the schema allows (240 frames of 1024²) takes ~15 s.

    With the object store (MINTPIPE_ARTIFACTS_URL=s3://...) the files are rendered into a scratch folder of the
    replica's own and uploaded before the manifest; the cancel marker is a HEAD request every CANCEL_POLL.

    An operator's cancel (a marker in the artifact store) is honoured before rendering, within half a second
    while rendering (the render stops within a frame), and before the hand-over: the message is acked, dropped.
    """

    def __init__(self, broker: Broker, artifacts: Artifacts, deadline: float = DEFAULT_DEADLINE,
                 threads: int = 2) -> None:
        self.broker = broker
        self.artifacts = artifacts
        self.deadline = deadline
        self.threads = threads
        self.events = EventPublisher(broker, "renderer")

    async def on_permanent(self, job: broker_pb2.RenderJob, reason: str) -> None:
        await self.events.emit(job.job_id, jobs_pb2.STAGE_FAILED, 0, error=reason)

    async def on_retry(self, job, attempt: int, retry_in: int, reason: str) -> None:
        # The stage it waits in again; changes nothing in the job, only adds to its retry history.
        await self.events.emit(job.job_id, jobs_pb2.STAGE_QUEUED, 0, error=reason, attempt=attempt,
                               retry_in_s=retry_in)

    async def __call__(self, job: broker_pb2.RenderJob, _message: AbstractIncomingMessage) -> None:
        if await was_cancelled(self.artifacts, job.job_id):
            raise JobCancelled
        try:
            settings = validate_settings(job.scene, json.loads(job.settings_json))
        except (SettingsError, json.JSONDecodeError) as exc:
            raise PermanentError(f"settings refused by the renderer: {exc}") from None
        manifest = await asyncio.to_thread(self.artifacts.read_manifest, job.job_id)
        if manifest is None or manifest.get("renderer_version") != RENDERER_VERSION:
            manifest = await self._render(job, settings)
        elif problem := await asyncio.to_thread(self.artifacts.check_manifest, manifest):
            # A manifest is a claim about files: trust it only when they still say the same (a truncated or
            # swapped file would otherwise be handed to the pin stage, and a replay could never mend it).
            log.warning("rendered files differ from their manifest; rendering again", problem=problem)
            manifest = await self._render(job, settings)
        else:
            log.info("assets already rendered; handing over again")

        if await was_cancelled(self.artifacts, job.job_id):
            raise JobCancelled
        pin = broker_pb2.PinJob(
            job_id=job.job_id, scene=job.scene, settings_json=job.settings_json, wallet=job.wallet,
            renderer_version=manifest["renderer_version"], settings_hash=manifest["settings_hash"],
            artifacts=[broker_pb2.ArtifactRef(**a) for a in manifest["artifacts"]],
        )
        await self.events.emit(job.job_id, jobs_pb2.STAGE_RENDERED, RENDER_END)
        await self.broker.publish(self.broker.topology.jobs_exchange, "pin", pin, message_id=job.job_id)
        log.info("handed to pin stage", artifacts=len(pin.artifacts))

    async def _render(self, job: broker_pb2.RenderJob, settings: dict) -> dict:
        await self.events.emit(job.job_id, jobs_pb2.STAGE_RENDERING, RENDER_START)
        loop = asyncio.get_running_loop()
        latest: asyncio.Queue[int] = asyncio.Queue()

        def on_progress(percent: int, _phase: str) -> None:  # called from the render thread
            loop.call_soon_threadsafe(latest.put_nowait, band(RENDER_START, RENDER_END - 1, percent))

        ended = asyncio.Event()
        reporter = asyncio.create_task(self._report(job.job_id, latest, ended))
        cancel = threading.Event()
        watcher = asyncio.create_task(self._watch_for_cancel(job.job_id, cancel))
        try:
            # The local engine's workspace is the job's folder in the store; the object store's a private
            # scratch folder whose files `publish` uploads (multipart, from disk) and which goes afterwards.
            with self.artifacts.workspace(job.job_id) as out_dir:
                # One render at a time per replica (prefetch 1), so the process's CPU times around it are the job's.
                began, cpu, timings = time.monotonic(), os.times(), {}
                assets = await asyncio.wait_for(
                    asyncio.to_thread(render_job, job.scene, settings, out_dir, on_progress, cancel,
                                      threads_for_now(self.threads),
                                      timings),
                    self.deadline)
                observe_render(time.monotonic() - began, cpu, os.times(), assets, timings)
                if await was_cancelled(self.artifacts, job.job_id):
                    raise JobCancelled
                await asyncio.to_thread(self.artifacts.publish, job.job_id,
                                        [(a.path, a.content_type, a.sha256) for a in assets])
        except TimeoutError:
            cancel.set()
            raise TransientError(f"render exceeded its {self.deadline:g} s deadline (RENDERER_DEADLINE_SECONDS)"
                                 ) from None
        except RenderCancelled:
            if await was_cancelled(self.artifacts, job.job_id):
                raise JobCancelled from None
            raise
        except asyncio.CancelledError:
            cancel.set()  # the render thread stops at its next frame, so a draining replica exits promptly
            raise
        finally:
            watcher.cancel()
            ended.set()
            await latest.put(-1)  # tells the reporter to flush and stop
            await reporter
        manifest = {
            "renderer_version": RENDERER_VERSION,
            "settings_hash": settings_hash(job.scene, settings),
            "artifacts": [
                {"kind": a.kind, "key": self.artifacts.key_for(job.job_id, a.path.name), "content_type": a.content_type,
                 "size": a.size, "sha256": a.sha256}
                for a in assets
            ],
        }
        await asyncio.to_thread(self.artifacts.write_manifest, job.job_id, manifest)
        log.info("rendered", files={a.kind: a.size for a in assets})
        return manifest

    async def _watch_for_cancel(self, job_id: str, cancel: threading.Event) -> None:
        while not cancel.is_set():
            await asyncio.sleep(CANCEL_POLL)
            if await was_cancelled(self.artifacts, job_id):
                cancel.set()

    async def _report(self, job_id: str, latest: asyncio.Queue[int], ended: asyncio.Event) -> None:
        """Publishes progress at most every PROGRESS_INTERVAL, coalescing whatever piled up in between (and while a
        publish was in flight); the last value as soon as the render ends."""
        sent = RENDER_START
        while True:
            value = await latest.get()
            done = value < 0
            while not latest.empty():
                nxt = latest.get_nowait()
                done = done or nxt < 0
                value = max(value, nxt)
            if value > sent:
                await self.events.emit(job_id, jobs_pb2.STAGE_RENDERING, value)
                sent = value
            if done:
                return
            # Whatever arrives meanwhile is coalesced into the next event; the end is never held back.
            if not ended.is_set():
                try:
                    await asyncio.wait_for(ended.wait(), PROGRESS_INTERVAL)
                except TimeoutError:
                    pass


def render_consumer(broker: Broker, artifacts: Artifacts, prefetch: int = 1,
                    deadline: float = DEFAULT_DEADLINE, max_attempts: int = MAX_ATTEMPTS,
                    threads: int = 2) -> QueueConsumer:
    """The render queue's consumer as every replica runs it (and the tests too)."""
    handler = RenderHandler(broker, artifacts, deadline, threads)
    return QueueConsumer(broker, broker.topology.render_queue, broker_pb2.RenderJob, handler, prefetch=prefetch,
                         check=check_render_job, on_permanent=handler.on_permanent,
                         on_retry=handler.on_retry, max_attempts=max_attempts)
