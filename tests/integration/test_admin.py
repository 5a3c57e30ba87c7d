"""Operator routes on the real broker and job store: who may call them, dead letters, replay (all, or one by
message id), cancel, and what they answer when the broker is down or goes away in the middle of a replay."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import pytest

import status.ops.actions
from mintpipe.messaging.broker import REASON_HEADER, Broker
from mintpipe.messaging.consumer import PermanentError, QueueConsumer
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.store import JobStore
from tests.support.broker import wait_for
from tests.support.operators import WALLET, new_job, operator_bridge, store_and_bridge

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def admin(broker, tmp_path):
    async with store_and_bridge(broker, tmp_path, TOKEN) as running:
        yield running


async def failed_job(store: JobStore, error: str) -> str:
    return await new_job(store, failed=error, published=False)


async def dead_letter(broker: Broker, job_id: str, reason: str) -> None:
    """Park a render job in the render dead-letter queue the way a consumer does (Broker.dead_letter)."""
    await broker.publish(broker.topology.dead_letter_exchange, broker.topology.render_queue,
                         broker_pb2.RenderJob(job_id=job_id, scene="gen1", settings_json="{}", wallet=WALLET),
                         headers={REASON_HEADER: reason}, message_id=job_id)


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
    # Listing holds the messages unacked and closes its channel; a quorum queue takes them back a moment
    # later, so wait for that (a listing that moved them would never see the count come back).
    await wait_for(lambda: _equals(probe.ready(broker.topology.dead_queue(broker.topology.render_queue)), 1),
                   timeout=10)

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
    # ...and left the marker that stops whichever renderer or pinner holds it (see the consumers' tests).
    assert ArtifactStore(store.path.parent / "artifacts").is_cancelled(job.job_id)

    done, _ = await store.reserve(f"k-{uuid.uuid4()}", "c" * 64, WALLET, "gen1", "{}")
    await store.apply(broker_pb2.JobEvent(job_id=done.job_id, stage=jobs_pb2.STAGE_PINNED, progress=100))
    assert (await client.post(f"/v1/admin/jobs/{done.job_id}/cancel", headers=AUTH)).status_code == 409
    assert (await client.post(f"/v1/admin/jobs/{'0' * 32}/cancel", headers=AUTH)).status_code == 404


async def test_one_dead_letter_is_replayed_by_its_message_id_and_the_other_stays(admin, broker, probe):
    client, store = admin
    topo = broker.topology
    kept, chosen = await failed_job(store, "renderer said no"), await failed_job(store, "renderer said no")
    for job_id in (kept, chosen):
        await dead_letter(broker, job_id, "renderer said no")
    await wait_for(lambda: _equals(probe.ready(topo.dead_queue(topo.render_queue)), 2), timeout=10)

    reply = await client.post("/v1/admin/dead-letters/render/replay", headers=AUTH, json={"message_ids": [chosen]})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"queue": "render", "replayed": 1, "message_ids": [chosen], "not_found": []}
    back = await probe.drain(topo.render_queue)
    assert [m.message_id for m in back] == [chosen]
    assert broker_pb2.RenderJob.FromString(back[0].body).job_id == chosen
    await wait_for(lambda: _equals(probe.ready(topo.dead_queue(topo.render_queue)), 1), timeout=10)
    still_dead = (await client.get("/v1/admin/dead-letters/render", headers=AUTH)).json()
    assert [m["message_id"] for m in still_dead["messages"]] == [kept]
    assert (await store.get(chosen)).stage == jobs_pb2.STAGE_QUEUED, "the replayed job is reopened"
    assert (await store.get(kept)).stage == jobs_pb2.STAGE_FAILED, "the other one is left alone"

    await wait_for(lambda: _equals(probe.ready(topo.dead_queue(topo.render_queue)), 1), timeout=10)
    again = (await client.post("/v1/admin/dead-letters/render/replay", headers=AUTH,
                               json={"message_ids": [chosen]})).json()
    assert again == {"queue": "render", "replayed": 0, "message_ids": [], "not_found": [chosen]}
    assert await probe.ready(topo.render_queue) == 0


async def _equals(value, expected) -> bool:
    return (await value) == expected


class CuttableLink:
    """A TCP hop between one Broker and RabbitMQ. `cut` is what a stopped broker or a dead network looks like
    from the service (the socket closes, reconnecting is refused); `freeze` is a partition (the socket stays
    open, nothing comes back). RabbitMQ itself is untouched: other connections go on."""

    def __init__(self, rabbit_url: str) -> None:
        self.url = urlsplit(rabbit_url)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen; returns the AMQP URL that goes through this link."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        credentials = f"{self.url.username}:{self.url.password}@" if self.url.username else ""
        return urlunsplit((self.url.scheme, f"{credentials}127.0.0.1:{port}", self.url.path, "", ""))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.url.hostname, self.url.port or 5672)
        except OSError:
            writer.close()
            return
        self.writers += [writer, up_writer]
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def freeze(self) -> None:
        self.flowing.clear()

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        self.flowing.set()  # frozen pumps wake up to find their sockets closed, and end


@pytest.fixture
async def linked(broker, rabbit_url, tmp_path):
    """(client, store, link, its broker): the admin routes on a Broker of their own that reaches RabbitMQ over a
    CuttableLink; dead letters are made and counted through the test's own, direct connection."""
    link = CuttableLink(rabbit_url)
    linked_broker = Broker(await link.start(), broker.topology, "admin-over-link")
    await linked_broker.connect(attempts=3)
    try:
        async with store_and_bridge(linked_broker, tmp_path, TOKEN) as (client, store):
            yield client, store, link, linked_broker
    finally:
        await link.cut()
        await linked_broker.close()


def assert_unavailable(reply: httpx.Response) -> None:
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == "unavailable" and error["field"] is None
    assert error["message"].startswith("broker: ")
    assert int(reply.headers["Retry-After"]) >= 1


async def test_admin_routes_answer_503_when_the_broker_is_gone(linked, broker, probe):
    client, store, link, linked_broker = linked
    dead = broker.topology.dead_queue(broker.topology.render_queue)
    job_id = await failed_job(store, "renderer said no")
    await dead_letter(broker, job_id, "renderer said no")
    await wait_for(lambda: probe.ready(dead), timeout=10)
    assert (await client.get("/v1/admin/dead-letters/render", headers=AUTH)).json()["count"] == 1

    await link.cut()
    await wait_for(lambda: not linked_broker.connected, timeout=10)
    assert_unavailable(await client.get("/v1/admin/dead-letters/render", headers=AUTH))
    assert_unavailable(await client.post("/v1/admin/dead-letters/render/replay", headers=AUTH, json={}))
    await wait_for(lambda: _equals(probe.ready(dead), 1), timeout=10)  # the listing's hold is given back
    assert (await store.get(job_id)).stage == jobs_pb2.STAGE_FAILED, "nothing was reopened"


async def test_admin_routes_answer_503_when_the_broker_stops_answering(linked, broker, probe, monkeypatch):
    client, store, link, linked_broker = linked
    dead = broker.topology.dead_queue(broker.topology.render_queue)
    await dead_letter(broker, uuid.uuid4().hex, "renderer said no")
    await wait_for(lambda: probe.ready(dead), timeout=10)
    monkeypatch.setattr(status.ops.actions, "BROKER_TIMEOUT", 1.0)

    link.freeze()
    assert linked_broker.connected, "a partition is not noticed by the connection itself"
    assert_unavailable(await client.get("/v1/admin/dead-letters/render", headers=AUTH))
    assert_unavailable(await client.post("/v1/admin/dead-letters/render/replay", headers=AUTH, json={}))
    assert await probe.ready(dead) == 1


async def _rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec("rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to set a queue policy")
async def test_a_replay_the_broker_refuses_midway_says_how_far_it_got(admin, broker, probe, rabbit_url):
    """The render queue gets a length limit that refuses publishes (a real broker-side refusal: basic.nack),
    so the replay stops partway. The answer is a 503 that says how many went back, and which; those are in
    the work queue, the others are still dead letters and their jobs still failed with their reason."""
    client, store = admin
    topo = broker.topology
    total = 5
    jobs = [await failed_job(store, f"renderer said no to {n}") for n in range(total)]
    for job_id in jobs:
        await dead_letter(broker, job_id, "renderer said no")
    await wait_for(lambda: _equals(probe.ready(topo.dead_queue(topo.render_queue)), total), timeout=10)

    vhost = unquote(urlsplit(rabbit_url).path[1:]) or "/"
    policy = f"{topo.prefix}-full"
    await _rabbitmqctl("set_policy", "-p", vhost, "--apply-to", "queues", policy,
                       "^" + topo.render_queue.replace(".", r"\.") + "$",
                       json.dumps({"max-length": 1, "overflow": "reject-publish"}))
    try:
        await wait_for(lambda: _policy_applied(vhost, topo.render_queue, policy), timeout=20, interval=0.5)
        reply = await client.post("/v1/admin/dead-letters/render/replay", headers=AUTH, json={})
    finally:
        await _rabbitmqctl("clear_policy", "-p", vhost, policy)

    assert_unavailable(reply)
    body = reply.json()
    replayed = body["replayed"]
    assert 1 <= replayed < total, body
    assert f"replay stopped after {replayed} of {total} dead letters" in body["error"]["message"]
    assert len(body["message_ids"]) == replayed and set(body["message_ids"]) <= set(jobs)
    back = await probe.drain(topo.render_queue)
    assert sorted(m.message_id for m in back) == sorted(body["message_ids"])
    await wait_for(lambda: _equals(probe.ready(topo.dead_queue(topo.render_queue)), total - replayed), timeout=10)
    for n, job_id in enumerate(jobs):
        record = await store.get(job_id)
        if job_id in body["message_ids"]:
            assert record.stage == jobs_pb2.STAGE_QUEUED
        else:
            assert record.stage == jobs_pb2.STAGE_FAILED, "a job whose message did not go back stays failed"
            assert record.state.error == f"renderer said no to {n}"

    # Without the limit the rest goes back. Through a new connection: RabbitMQ 3.10 keeps refusing a
    # publisher a quorum queue once refused, even after the limit is lifted and the queue drained.
    await wait_for(lambda: _not(_policy_applied(vhost, topo.render_queue, policy)), timeout=20, interval=0.5)
    fresh = Broker(rabbit_url, topo, "admin-after-limit")
    await fresh.connect(attempts=3)
    try:
        async with operator_bridge(fresh, store, TOKEN) as again:
            rest = await again.post("/v1/admin/dead-letters/render/replay", headers=AUTH, json={})
    finally:
        await fresh.close()
    assert rest.status_code == 200, rest.text
    assert rest.json()["replayed"] == total - replayed
    assert await probe.ready(topo.render_queue) == total - replayed
    assert await probe.ready(topo.dead_queue(topo.render_queue)) == 0


async def _not(value) -> bool:
    return not await value


async def _policy_applied(vhost: str, queue: str, policy: str) -> bool:
    out = await _rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "policy")
    return any(line.split() == [queue, policy] for line in out.splitlines())


async def test_a_replay_skips_and_reports_cancelled_jobs_and_leaves_them_cancelled(admin, broker, probe):
    client, store = admin
    topo = broker.topology
    # Parked for an operator (bad credentials, budget spent): dead-lettered, its job deliberately not failed.
    job, _ = await store.reserve(f"k-{uuid.uuid4()}", "f" * 64, WALLET, "gen1", "{}")
    parked, other = job.job_id, await failed_job(store, "renderer said no")
    await dead_letter(broker, parked, "pinata: 401, fix the JWT then replay")
    await dead_letter(broker, other, "renderer said no")
    cancel = await client.post(f"/v1/admin/jobs/{parked}/cancel", headers=AUTH)
    assert cancel.status_code == 200 and cancel.json()["error"] == "cancelled by an operator"

    replayed = (await client.post("/v1/admin/dead-letters/render/replay", headers=AUTH, json={})).json()
    assert replayed["message_ids"] == [other]
    assert replayed["skipped_cancelled"] == [{"message_id": parked, "job_id": parked}]
    job = (await client.get(f"/v1/jobs/{parked}")).json()
    assert (job["stage"], job["error"]) == ("failed", "cancelled by an operator")
    assert (await client.get(f"/v1/jobs/{other}")).json()["stage"] == "queued"
    back = await probe.drain(topo.render_queue)
    assert [broker_pb2.RenderJob.FromString(m.body).job_id for m in back] == [other]
    assert await probe.ready(topo.dead_queue(topo.render_queue)) == 0


async def test_without_an_admin_token_configured_every_admin_route_answers_401(broker, tmp_path):
    """MINTPIPE_ADMIN_TOKEN unset: nobody gets in, whatever they present (an empty bearer included)."""
    async with store_and_bridge(broker, tmp_path, None) as (client, store):
        job, _ = await store.reserve("k-no-token", "a" * 64, WALLET, "gen1", "{}")
        routes = [("GET", "/v1/admin/dead-letters/render"), ("POST", "/v1/admin/dead-letters/pin/replay"),
                  ("POST", f"/v1/admin/jobs/{job.job_id}/cancel")]
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"},
                            {"Authorization": "Bearer null"}, {"Authorization": "Basic Og=="}):
                reply = await client.request(method, path, headers=headers, json={})
                assert reply.status_code == 401, (method, path, headers, reply.text)
                assert reply.json()["error"]["field"] == "Authorization"
        assert (await store.get(job.job_id)).stage == jobs_pb2.STAGE_QUEUED, "a refused cancel changed the job"
