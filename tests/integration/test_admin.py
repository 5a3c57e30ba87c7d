"""Operator routes on the real broker and job store: who may call them, dead letters, replay, cancel."""

from __future__ import annotations

import json
import uuid

import grpc
import httpx
import pytest

from mintpipe.consumer import PermanentError, QueueConsumer
from mintpipe.ipfs_store import LocalIpfsStore
from mintpipe.v1 import broker_pb2, gateway_pb2_grpc, jobs_pb2
from status.admin import AdminDeps
from status.bus import JobBus
from status.http_api import BridgeDeps, create_app
from status.store import JobStore
from tests.support.broker import wait_for

pytestmark = pytest.mark.integration
TOKEN = "s3cret-admin-token"
WALLET = "0x000000000000000000000000000000000000dEaD"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def admin(broker, tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    bus = JobBus()
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # no gateway needed for these routes
    app = create_app(BridgeDeps(store=store, bus=bus, gateway=gateway_pb2_grpc.GatewayServiceStub(channel),
                                ipfs=LocalIpfsStore(tmp_path / "ipfs"), checks={},
                                admin=AdminDeps(broker, store, bus, TOKEN)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge") as client:
        yield client, store
    await channel.close()
    await store.close()


async def test_admin_routes_refuse_callers_without_the_token(admin):
    client, _ = admin
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        reply = await client.get("/v1/admin/dead-letters/render", headers=headers)
        assert reply.status_code == 401
        assert TOKEN not in reply.text


async def test_dead_letters_are_listed_with_reasons_and_replayed_to_their_queue(admin, broker, probe):
    client, store = admin
    job, _ = await store.reserve("k", "a" * 64, WALLET, "gen1", "{}")

    async def refuse(_job, _message):
        raise PermanentError("backend said no: fix the key")

    consumer = QueueConsumer(broker, broker.topology.render_queue, broker_pb2.RenderJob, refuse, prefetch=1)
    await consumer.start()
    await broker.publish(broker.topology.jobs_exchange, "render",
                         broker_pb2.RenderJob(job_id=job.job_id, scene="gen1", settings_json="{}", wallet=WALLET),
                         message_id=job.job_id)
    await wait_for(lambda: probe.ready(broker.topology.dead_queue(broker.topology.render_queue)))
    await consumer.stop(1)

    listed = (await client.get("/v1/admin/dead-letters/render", headers=AUTH)).json()
    assert listed["count"] == 1
    assert listed["messages"][0]["reason"] == "backend said no: fix the key"
    assert listed["messages"][0]["job_id"] == job.job_id
    assert await probe.ready(broker.topology.dead_queue(broker.topology.render_queue)) == 1, "listing moved it"

    replayed = (await client.post("/v1/admin/dead-letters/render/replay", headers=AUTH, json={})).json()
    assert replayed["replayed"] == 1
    assert await probe.ready(broker.topology.dead_queue(broker.topology.render_queue)) == 0
    back = await probe.take(broker.topology.render_queue, timeout=5)
    assert broker_pb2.RenderJob.FromString(back.body).job_id == job.job_id
    assert "x-mintpipe-reason" not in (back.headers or {})

    unknown = await client.get("/v1/admin/dead-letters/nope", headers=AUTH)
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "queue"


async def test_cancel_fails_a_job_in_flight_but_not_a_pinned_one(admin):
    client, store = admin
    job, _ = await store.reserve(f"k-{uuid.uuid4()}", "b" * 64, WALLET, "gen1", json.dumps({"seed": 1}))
    reply = await client.post(f"/v1/admin/jobs/{job.job_id}/cancel", headers=AUTH)
    assert reply.status_code == 200
    assert reply.json()["stage"] == "failed" and reply.json()["error"] == "cancelled by an operator"

    done, _ = await store.reserve(f"k-{uuid.uuid4()}", "c" * 64, WALLET, "gen1", "{}")
    await store.apply(broker_pb2.JobEvent(job_id=done.job_id, stage=jobs_pb2.STAGE_PINNED, progress=100))
    assert (await client.post(f"/v1/admin/jobs/{done.job_id}/cancel", headers=AUTH)).status_code == 409
    assert (await client.post(f"/v1/admin/jobs/{'0' * 32}/cancel", headers=AUTH)).status_code == 404
