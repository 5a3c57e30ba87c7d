"""SIGTERM drains the pinner, the status service and the gateway as real processes: health goes NOT_SERVING,
consuming stops (a message published after that is left for another replica), work in flight finishes, and
the process exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.v1 import broker_pb2, gateway_pb2, gateway_pb2_grpc, jobs_pb2
from status.jobs.store import JobStore
from tests.conftest import free_port
from tests.integration.test_drain import health
from tests.integration.test_pinner_consumer import rendered_pin_job
from tests.support.broker import wait_for
from tests.support.emulator import running_emulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]
WALLET = "0x000000000000000000000000000000000000dEaD"


def start(module: str, rabbit_url: str, prefix: str, data_dir: Path, **env: str) -> subprocess.Popen:
    full = {**os.environ, "MINTPIPE_AMQP_URL": rabbit_url, "MINTPIPE_BROKER_PREFIX": prefix,
            "MINTPIPE_DATA_DIR": str(data_dir), "MINTPIPE_GRACE_SECONDS": "30", **env}
    return subprocess.Popen([sys.executable, "-m", module], env=full, stdout=subprocess.DEVNULL)


async def consumers(probe, queue: str) -> int:
    channel = await probe.channel()
    declared = await channel.declare_queue(queue, passive=True, robust=False)
    return declared.declaration_result.consumer_count or 0


async def serving(port: int) -> bool:
    return await health(port) == "SERVING"


async def not_serving(port: int) -> bool:
    return await health(port) != "SERVING"


async def exited(process: subprocess.Popen) -> int:
    return await asyncio.to_thread(process.wait, 60)


async def test_a_draining_pinner_finishes_its_job_and_takes_no_new_one(rabbit_url, broker_prefix, broker, probe,
                                                                       tmp_path):
    topo = broker.topology
    artifacts = ArtifactStore(tmp_path / "artifacts")
    first, second = rendered_pin_job(artifacts, seed=61), rendered_pin_job(artifacts, seed=62)
    port = free_port()
    with running_emulator() as emu:
        pinner = start("pinner", rabbit_url, broker_prefix, tmp_path, PINNER_HEALTH_PORT=str(port),
                       PINNER_BACKEND="pinata", PINATA_JWT=emu.jwt, PINNER_PINATA_API_URL=emu.url,
                       PINNER_PINATA_UPLOADS_URL=emu.url)
        try:
            await wait_for(lambda: serving(port), timeout=30)
            emu.fault(delay=3.0)  # the job's first backend request takes a while: it is in flight
            await broker.publish(topo.jobs_exchange, "pin", first)
            await wait_for(lambda: len(emu.requests()) >= 1, timeout=30)

            pinner.send_signal(signal.SIGTERM)
            assert await wait_for(lambda: not_serving(port), timeout=10), "health still SERVING while draining"
            await wait_for(lambda: _zero(consumers(probe, topo.pin_queue)), timeout=10)
            await broker.publish(topo.jobs_exchange, "pin", second)  # after consuming stopped
            assert await exited(pinner) == 0
        finally:
            if pinner.poll() is None:
                pinner.kill()
        uploads = emu.stats()["uploads_per_cid"]
    events = [broker_pb2.JobEvent.FromString(m.body) for m in await probe.drain(topo.status_queue)]
    pinned = {e.job_id for e in events if e.stage == jobs_pb2.STAGE_PINNED}
    assert pinned == {first.job_id}, "the job in flight did not finish, or the draining replica took a new one"
    assert len(uploads) == 4
    left = [broker_pb2.PinJob.FromString(m.body).job_id for m in await probe.drain(topo.pin_queue)]
    assert left == [second.job_id], "the job published after SIGTERM must wait for another replica"


async def test_a_draining_status_service_stops_consuming_and_exits_cleanly(rabbit_url, broker_prefix, broker,
                                                                           probe, tmp_path):
    topo = broker.topology
    grpc_port, http_port = free_port(), free_port()
    status = start("status", rabbit_url, broker_prefix, tmp_path, STATUS_GRPC_PORT=str(grpc_port),
                   STATUS_HTTP_PORT=str(http_port), STATUS_GATEWAY_TARGET="127.0.0.1:9")
    try:
        await wait_for(lambda: serving(grpc_port), timeout=30)
        await wait_for(lambda: _positive(consumers(probe, topo.status_queue)), timeout=10)
        status.send_signal(signal.SIGTERM)
        assert await wait_for(lambda: not_serving(grpc_port), timeout=10)
        await wait_for(lambda: _zero(consumers(probe, topo.status_queue)), timeout=10)
        event = broker_pb2.JobEvent(job_id="a" * 32, stage=jobs_pb2.STAGE_RENDERING, progress=5)
        await broker.publish(topo.events_exchange, "job.rendering", event)
        assert await exited(status) == 0
    finally:
        if status.poll() is None:
            status.kill()
    # Not taken by the draining replica: it waits for the next one.
    assert await probe.ready(topo.status_queue) == 1
    assert await probe.ready(topo.dead_watch_queue) == 0


async def test_a_draining_gateway_answers_the_submission_in_flight_and_refuses_new_ones(
        rabbit_url, broker_prefix, broker, probe, tmp_path):
    """The job store behind the gateway is slow (a real status service whose reservations take 2 s), so a
    submission is in flight when SIGTERM arrives: it is answered, its render job confirmed; the next is refused."""
    from tests.support.gateway import running_status

    topo = broker.topology
    async with running_status(tmp_path, reserve_delay=2.0) as status_port:
        port = free_port()
        gateway = start("gateway", rabbit_url, broker_prefix, tmp_path, GATEWAY_GRPC_PORT=str(port),
                        GATEWAY_STATUS_TARGET=f"127.0.0.1:{status_port}")
        try:
            await wait_for(lambda: serving(port), timeout=30)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = gateway_pb2_grpc.GatewayServiceStub(channel)
                request = gateway_pb2.SubmitJobRequest(settings_json=json.dumps({"seed": 1}), wallet=WALLET,
                                                       idempotency_key="drain-1")
                async def submit():
                    return await stub.SubmitJob(request, timeout=30)

                in_flight = asyncio.create_task(submit())
                await asyncio.sleep(0.5)
                gateway.send_signal(signal.SIGTERM)
                reply = await in_flight
                assert len(reply.job_id) == 32
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.SubmitJob(gateway_pb2.SubmitJobRequest(
                        settings_json=json.dumps({"seed": 2}), wallet=WALLET, idempotency_key="drain-2"), timeout=5)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert await exited(gateway) == 0
        finally:
            if gateway.poll() is None:
                gateway.kill()
    jobs = [broker_pb2.RenderJob.FromString(m.body).job_id for m in await probe.drain(topo.render_queue)]
    assert jobs == [reply.job_id]
    store = JobStore(tmp_path / "jobs.sqlite3")  # the status service's, now stopped
    await store.open()
    try:
        assert await store.unpublished_before(2**40) == [], "the drain sent the job's published mark"
    finally:
        await store.close()


async def _zero(value) -> bool:
    return await value == 0


async def _positive(value) -> bool:
    return await value > 0
