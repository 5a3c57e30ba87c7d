"""`mintpipe admin` as an operator runs it (a separate process) against a live bridge over real HTTP, wired to a
real gateway, status gRPC server, job store and RabbitMQ: list dead letters, replay one by id then the rest,
cancel; and a wrong or missing token, or no bridge at all, is a clear message and a non-zero exit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from mintpipe.messaging.consumer import PermanentError, QueueConsumer
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.app import BridgeDeps, create_app
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from status.ops.actions import AdminDeps
from tests.conftest import ROOT, free_port
from tests.support.broker import wait_for
from tests.support.gateway import running_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
TOKEN = "cli-admin-token-0b7e"
WALLET = "0x000000000000000000000000000000000000dEaD"
REASON = "settings: palette entry 2 is not a colour"


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: they belong to the test runner here."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Bridge:
    url: str
    store: JobStore


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


@pytest.fixture
async def bridge(broker, tmp_path):
    async with running_gateway(broker, tmp_path) as side:
        bus = JobBus()
        app = create_app(BridgeDeps(store=side.store, bus=bus, gateway=side.gateway,
                                    ipfs=LocalIpfsStore(tmp_path / "ipfs"), checks={},
                                    admin=AdminDeps(broker, side.store, bus, TOKEN,
                                                    ArtifactStore(tmp_path / "artifacts"))))
        port = free_port()
        server = _Uvicorn(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                         lifespan="off"))
        task = asyncio.create_task(server.serve())
        await wait_for(lambda: server.started or task.done(), timeout=10)
        try:
            yield Bridge(f"http://127.0.0.1:{port}", side.store)
        finally:
            server.should_exit = True
            await task


async def mintpipe_admin(url: str, *args: str, token: str | None = TOKEN) -> Run:
    env = {k: v for k, v in os.environ.items() if k != "MINTPIPE_ADMIN_TOKEN"}
    if token is not None:
        env["MINTPIPE_ADMIN_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "launcher", "admin", "--url", url, *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return Run(process.returncode, out.decode(), err.decode())


async def submit(bridge: Bridge, seed: int) -> str:
    async with httpx.AsyncClient(base_url=bridge.url, timeout=20) as client:
        reply = await client.post("/v1/jobs", json={"settings": {"seed": seed}, "wallet": WALLET})
    assert reply.status_code == 202, reply.text
    return reply.json()["job_id"]


async def dead_letter_everything(broker, probe, expected: int) -> None:
    """A render replica that refuses every job for good: each lands in the dead-letter queue with REASON."""

    async def refuse(_job, _message):
        raise PermanentError(REASON)

    consumer = QueueConsumer(broker, broker.topology.render_queue, broker_pb2.RenderJob, refuse, prefetch=4)
    await consumer.start()
    dead = broker.topology.dead_queue(broker.topology.render_queue)
    try:
        await wait_for(lambda: _equals(probe.ready(dead), expected), timeout=20)
    finally:
        await consumer.stop(1)


async def _equals(value, expected) -> bool:
    return (await value) == expected


async def test_an_operator_lists_replays_and_cancels_from_the_command_line(bridge, broker, probe):
    topo = broker.topology
    first, second = await submit(bridge, 1), await submit(bridge, 2)
    await dead_letter_everything(broker, probe, 2)

    dead = topo.dead_queue(topo.render_queue)
    listed = await mintpipe_admin(bridge.url, "dead-letters", "render")
    assert listed.code == 0, listed.err
    assert listed.json()["count"] == 2
    assert {(m["job_id"], m["message_id"], m["reason"]) for m in listed.json()["messages"]} == {
        (first, first, REASON), (second, second, REASON)}

    one = await mintpipe_admin(bridge.url, "replay", "render", "--id", second)
    assert one.code == 0, one.err
    assert one.json()["replayed"] == 1 and one.json()["message_ids"] == [second]
    assert [m.message_id for m in await probe.drain(topo.render_queue)] == [second]
    # The dead letters a call held unacked are back in their queue a moment after it answers.
    await wait_for(lambda: _equals(probe.ready(dead), 1), timeout=10)
    left = (await mintpipe_admin(bridge.url, "dead-letters", "render")).json()
    assert [m["message_id"] for m in left["messages"]] == [first]

    await wait_for(lambda: _equals(probe.ready(dead), 1), timeout=10)
    rest = await mintpipe_admin(bridge.url, "replay", "render")
    assert rest.code == 0, rest.err
    assert rest.json()["message_ids"] == [first]
    assert [m.message_id for m in await probe.drain(topo.render_queue)] == [first]
    assert await probe.ready(dead) == 0

    cancelled = await mintpipe_admin(bridge.url, "cancel", first)
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json()["stage"] == "failed" and cancelled.json()["error"] == "cancelled by an operator"
    assert (await bridge.store.get(first)).stage == jobs_pb2.STAGE_FAILED
    assert (await bridge.store.get(second)).stage == jobs_pb2.STAGE_QUEUED

    unknown = await mintpipe_admin(bridge.url, "cancel", "0" * 32)
    assert unknown.code == 1
    assert unknown.err.strip() == f"mintpipe admin: HTTP 404: no job {'0' * 32}"


async def test_a_wrong_token_is_a_clear_401_message_and_a_failure_without_echoing_the_token(bridge, broker, probe):
    wrong = "not-the-token-5c1d9e"
    job_id = await submit(bridge, 3)
    await dead_letter_everything(broker, probe, 1)
    for args in (("dead-letters", "render"), ("replay", "render"), ("cancel", job_id)):
        run = await mintpipe_admin(bridge.url, *args, token=wrong)
        assert run.code == 1, args
        assert run.out == "", "nothing on stdout for a script to mistake for an answer"
        assert "401" in run.err and "MINTPIPE_ADMIN_TOKEN" in run.err
        assert "Traceback" not in run.err
        for secret in (wrong, TOKEN):
            assert secret not in run.out + run.err
    assert await probe.ready(broker.topology.dead_queue(broker.topology.render_queue)) == 1, "nothing replayed"
    assert (await bridge.store.get(job_id)).stage == jobs_pb2.STAGE_QUEUED, "nothing cancelled"


async def test_no_token_or_no_bridge_is_a_clear_message(bridge):
    missing = await mintpipe_admin(bridge.url, "dead-letters", "render", token=None)
    assert missing.code == 2 and "set MINTPIPE_ADMIN_TOKEN" in missing.err

    nobody = f"http://127.0.0.1:{free_port()}"
    down = await mintpipe_admin(nobody, "dead-letters", "render")
    assert down.code == 1
    assert down.err.startswith(f"mintpipe admin: cannot reach the bridge at {nobody}")
    assert "Traceback" not in down.err and TOKEN not in down.err
