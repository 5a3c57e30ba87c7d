"""SIGTERM on a real renderer process: health goes NOT_SERVING, in-flight work finishes within the grace period
(and is not delivered again), or is handed back when the grace period is too short for it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mintpipe.core.scenes import validate_settings
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.v1 import broker_pb2, jobs_pb2
from tests.conftest import free_port
from tests.support.broker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
WALLET = "0x000000000000000000000000000000000000dEaD"


def start_renderer(rabbit_url: str, prefix: str, data_dir: Path, grace: float, port: int) -> subprocess.Popen:
    env = {**os.environ, "MINTPIPE_AMQP_URL": rabbit_url, "MINTPIPE_BROKER_PREFIX": prefix,
           "MINTPIPE_DATA_DIR": str(data_dir), "RENDERER_HEALTH_PORT": str(port),
           "MINTPIPE_GRACE_SECONDS": str(grace)}
    return subprocess.Popen([sys.executable, "-m", "renderer"], env=env, stdout=subprocess.DEVNULL)


def render_job(**settings) -> broker_pb2.RenderJob:
    return broker_pb2.RenderJob(job_id=uuid.uuid4().hex, scene="gen1", wallet=WALLET,
                                settings_json=json.dumps(validate_settings("gen1", settings)))


async def health(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def rendering_started(probe, queue: str, job_id: str) -> None:
    while True:
        event = broker_pb2.JobEvent.FromString((await probe.take(queue, timeout=60)).body)
        if event.job_id == job_id and event.stage == jobs_pb2.STAGE_RENDERING:
            return


async def test_sigterm_finishes_the_job_in_hand_then_exits(rabbit_url, broker_prefix, broker, probe, tmp_path):
    port = free_port()
    renderer = start_renderer(rabbit_url, broker_prefix, tmp_path, grace=60, port=port)
    try:
        await wait_for(lambda: _serving(port), timeout=30)
        job = render_job(seed=21, frames=120, size=512)
        await broker.publish(broker.topology.jobs_exchange, "render", job)
        await rendering_started(probe, broker.topology.status_queue, job.job_id)

        renderer.send_signal(signal.SIGTERM)
        assert await wait_for(lambda: _not_serving(port), timeout=10), "health still SERVING while draining"
        await asyncio.to_thread(renderer.wait, 60)
        assert renderer.returncode == 0
    finally:
        if renderer.poll() is None:
            renderer.kill()
    pin = broker_pb2.PinJob.FromString((await probe.take(broker.topology.pin_queue, timeout=5)).body)
    assert pin.job_id == job.job_id and len(pin.artifacts) == 3
    # Finished work was acked: nothing left to deliver again.
    assert await probe.ready(broker.topology.render_queue) == 0


async def _serving(port: int) -> bool:
    return await health(port) == "SERVING"


async def _not_serving(port: int) -> bool:
    return await health(port) != "SERVING"


async def test_work_longer_than_the_grace_period_is_handed_back(rabbit_url, broker_prefix, broker, probe, tmp_path):
    port = free_port()
    renderer = start_renderer(rabbit_url, broker_prefix, tmp_path, grace=0.5, port=port)
    try:
        await wait_for(lambda: _serving(port), timeout=30)
        job = render_job(seed=22, frames=240, size=1024)  # far longer than half a second
        await broker.publish(broker.topology.jobs_exchange, "render", job)
        await rendering_started(probe, broker.topology.status_queue, job.job_id)
        renderer.send_signal(signal.SIGTERM)
        await asyncio.to_thread(renderer.wait, 60)
        assert renderer.returncode == 0
    finally:
        if renderer.poll() is None:
            renderer.kill()
    assert await wait_for(lambda: probe.ready(broker.topology.render_queue), timeout=10) == 1
    message = await probe.take(broker.topology.render_queue, timeout=5)
    assert broker_pb2.RenderJob.FromString(message.body).job_id == job.job_id
    assert await probe.ready(broker.topology.pin_queue) == 0
    # The replica stopped the render instead of finishing it: nothing complete was written (no manifest, no
    # final file, no half-written temp left behind). How long stopping takes is measured by bench/cancel.py.
    job_dir = ArtifactStore(tmp_path / "artifacts").job_dir(job.job_id)
    assert ArtifactStore(tmp_path / "artifacts").read_manifest(job.job_id) is None
    assert not job_dir.exists() or not any(job_dir.iterdir()), sorted(p.name for p in job_dir.iterdir())
