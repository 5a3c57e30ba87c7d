"""The operators' JSON API (status.ops.views) on the real broker and job store: sessions, CSRF and the read-only
token; search by job id, wallet, idempotency key and CID; a job's history as the stages reported it; the
overview's queue figures against what is really in the queues; actions and their audit lines."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from mintpipe.messaging.broker import REASON_HEADER, RETRY_TIERS, Broker
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.pin_ledger import PinLedger
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.bus import JobBus
from status.ops.views import OpsConfig
from status.workers.consumer import EventApplier
from tests.support.broker import wait_for
from tests.support.operators import WALLET, new_job, pin_ledger_of, store_and_bridge

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
TOKEN = "admin-token-for-tests"
READONLY = "readonly-token-for-tests"
OTHER = "0x00000000000000000000000000000000000000AA"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


OPS = OpsConfig(readonly_token=READONLY, monthly_pins=100)




@pytest.fixture
async def ops(broker, tmp_path, db_url):
    async with store_and_bridge(broker, tmp_path, TOKEN, OPS, db_url=db_url) as running:
        yield running


async def sign_in(client: httpx.AsyncClient, token: str) -> dict:
    reply = await client.post("/v1/admin/session", json={"token": token})
    assert reply.status_code == 200, reply.text
    return reply.json()


async def test_a_session_cookie_is_httponly_strict_and_actions_need_its_csrf_token(ops):
    client, store = ops
    job_id = await new_job(store)
    reply = await client.post("/v1/admin/session", json={"token": TOKEN})
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert TOKEN not in reply.text and TOKEN not in reply.headers["set-cookie"]
    csrf = reply.json()["csrf_token"]
    got = await client.get("/v1/admin/session")
    assert got.json()["csrf_token"] == csrf, got.text

    forged = await client.post(f"/v1/admin/actions/cancel/{job_id}")
    assert forged.status_code == 403 and forged.json()["error"]["field"] == "X-CSRF-Token"
    assert (await store.get(job_id)).stage == jobs_pb2.STAGE_QUEUED, "a refused action changed nothing"
    wrong = await client.post(f"/v1/admin/actions/cancel/{job_id}", headers={"X-CSRF-Token": csrf[:-2] + "xx"})
    assert wrong.status_code == 403

    done = await client.post(f"/v1/admin/actions/cancel/{job_id}", headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json()["stage"] == "failed"
    audit = (await client.get("/v1/admin/audit")).json()["entries"]
    assert [(e["action"], e["target"], e["outcome"]) for e in audit[:3]] == [
        ("cancel", job_id, "ok"), ("cancel", job_id, "refused csrf"), ("cancel", job_id, "refused csrf")]
    assert audit[0]["actor"].startswith("admin (session")

    await client.delete("/v1/admin/session", headers={"X-CSRF-Token": csrf})
    assert (await client.get("/v1/admin/overview")).status_code == 401


async def test_the_read_only_token_sees_everything_and_changes_nothing(ops):
    client, store = ops
    job_id = await new_job(store)
    viewer = {"Authorization": f"Bearer {READONLY}"}
    assert (await client.get("/v1/admin/overview", headers=viewer)).status_code == 200
    assert (await client.get(f"/v1/admin/jobs/{job_id}/detail", headers=viewer)).status_code == 200
    refused = await client.post(f"/v1/admin/actions/cancel/{job_id}", headers=viewer)
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "role"
    assert (await client.post("/v1/admin/actions/replay/render", headers=viewer)).status_code == 403
    assert (await store.get(job_id)).stage == jobs_pb2.STAGE_QUEUED
    session = await sign_in(client, READONLY)
    assert session["role"] == "viewer" and session["csrf_token"] is None
    assert (await client.post(f"/v1/admin/actions/cancel/{job_id}")).status_code == 403
    # The old bearer-only routes take the admin token only.
    assert (await client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=viewer)).status_code == 401


async def test_wrong_tokens_are_rate_limited_and_then_even_the_right_one_waits(ops):
    client, _ = ops
    codes = [(await client.post("/v1/admin/session", json={"token": f"guess-{i}"})).status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    locked = await client.post("/v1/admin/session", json={"token": TOKEN})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert (await client.get("/v1/admin/overview", headers=BEARER)).status_code == 429


async def test_search_finds_a_job_by_id_wallet_key_and_cid_with_filters_and_paging(ops):
    client, store = ops
    mine = [await new_job(store) for _ in range(3)]
    theirs = await new_job(store, OTHER, key="order-77")
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    await store.apply(broker_pb2.JobEvent(job_id=mine[0], stage=jobs_pb2.STAGE_PINNED, progress=100,
                                          assets=jobs_pb2.JobAssets(image=cid), token_uri="ipfs://" + cid))

    async def found(**params) -> list[str]:
        reply = await client.get("/v1/admin/jobs", params=params, headers=BEARER)
        assert reply.status_code == 200, reply.text
        return [j["job_id"] for j in reply.json()["jobs"]]

    assert await found(q=WALLET.lower()) == mine[::-1]
    assert await found(q=theirs) == [theirs]
    assert await found(q="order-77") == [theirs]
    assert await found(q=cid) == [mine[0]]
    assert await found(q=f"ipfs://{cid}") == [mine[0]]
    assert await found(q=WALLET, stage="pinned") == [mine[0]]
    assert await found(q="no-such-key") == []
    first = (await client.get("/v1/admin/jobs", params={"q": WALLET, "limit": 2}, headers=BEARER)).json()
    rest = await found(q=WALLET, limit=2, cursor=first["next_cursor"])
    assert [j["job_id"] for j in first["jobs"]] + rest == mine[::-1]
    assert await found(since="2999-01-01T00:00:00Z") == []
    bad = await client.get("/v1/admin/jobs", params={"since": "yesterday"}, headers=BEARER)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "since"


async def test_a_jobs_detail_shows_each_stage_with_its_replica_its_retries_and_dead_letters(ops):
    client, store = ops
    job_id = await new_job(store)
    apply = EventApplier(store, JobBus())
    for stage, progress, replica, attempt in (
        (jobs_pb2.STAGE_RENDERING, 5, "renderer-1", 0), (jobs_pb2.STAGE_RENDERING, 40, "renderer-1", 0),
        (jobs_pb2.STAGE_RENDERED, 70, "renderer-1", 0), (jobs_pb2.STAGE_PINNING, 71, "pinner-0", 0),
        (jobs_pb2.STAGE_RENDERED, 0, "pinner-0", 1), (jobs_pb2.STAGE_PINNED, 100, "pinner-1", 0),
    ):
        await apply(broker_pb2.JobEvent(job_id=job_id, stage=stage, progress=progress, source=replica.split("-")[0],
                                        replica=replica, attempt=attempt, retry_in_s=5 if attempt else 0,
                                        error="pinata: 503" if attempt else ""), None)
    detail = (await client.get(f"/v1/admin/jobs/{job_id}/detail", headers=BEARER)).json()
    assert [(h["stage"], h["replica"]) for h in detail["history"]] == [
        ("queued", ""), ("rendering", "renderer-1"), ("rendered", "renderer-1"), ("pinning", "pinner-0"),
        ("pinned", "pinner-1")]
    assert [(r["attempt"], r["reason"], r["retry_in_s"], r["replica"]) for r in detail["retries"]] == [
        (1, "pinata: 503", 5, "pinner-0")]
    assert detail["stage"] == "pinned" and detail["progress"] == 100
    assert (await client.get(f"/v1/admin/jobs/{'f' * 32}/detail", headers=BEARER)).status_code == 404


async def test_the_overview_counts_what_is_in_the_queues_and_warns_of_a_stage_without_consumers(ops, broker,
                                                                                                 tmp_path):
    client, store = ops
    topo = broker.topology
    for _ in range(3):
        job_id = await new_job(store)
        await broker.publish(topo.jobs_exchange, "render", broker_pb2.RenderJob(
            job_id=job_id, scene="gen1", settings_json="{}", wallet=WALLET), message_id=job_id)
    dead = await new_job(store)
    await broker.publish(topo.dead_letter_exchange, topo.pin_queue, broker_pb2.PinJob(job_id=dead),
                         headers={REASON_HEADER: "pinata: 401"}, message_id=dead)
    overview = (await client.get("/v1/admin/overview", headers=BEARER)).json()
    queues = {q["queue"]: q for q in overview["queues"]}
    assert queues[topo.render_queue]["depth"] == 3 and queues[topo.render_queue]["consumers"] == 0
    assert queues[topo.render_queue]["oldest_age_s"] >= 0
    assert queues[topo.dead_queue(topo.pin_queue)]["depth"] == 1
    # the work queue, its dead letters and each retry tier
    assert len([q for q in overview["queues"] if q["stage"] == "render"]) == 2 + len(RETRY_TIERS)
    texts = " | ".join(w["text"] for w in overview["warnings"])
    assert "no consumer on render" in texts and "1 dead letter(s) in pin" in texts
    assert overview["jobs"]["by_stage"]["queued"] == 4
    assert overview["pins"]["monthly_budget"] == 100 and overview["pins"]["left"] == 100
    assert overview["pins"]["last_429_at"] is None

    # A pinner records the backend's 429 (and its Retry-After) in the shared ledger; the overview shows it.
    ledger = PinLedger(pin_ledger_of(store, tmp_path), "pinata")
    await ledger.record_pin("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", 10, dead)
    before = time.time()
    await ledger.block_requests(30)
    await asyncio.sleep(2.1)  # past the snapshot dashboards share
    pins = (await client.get("/v1/admin/overview", headers=BEARER)).json()["pins"]
    assert pins["last_429_at"] >= before and pins["last_429_retry_after_s"] == 30
    assert pins["used_this_month"] == 1 and pins["left"] == 99
    scraped = (await client.get("/metrics")).text
    assert f'mintpipe_queue_depth{{kind="work",queue="{topo.render_queue}",stage="render"}} 3.0' in scraped


async def test_retry_tiers_and_dead_letters_have_rates_from_what_went_in_and_came_out(ops, broker, probe):
    client, store = ops
    topo = broker.topology
    applier = EventApplier(store, JobBus())
    rendering, pinning, parked = await new_job(store), await new_job(store), await new_job(store)
    # The renderer parks one job in the 1 s tier, the pinner one in the 5 s tier (as their on_retry report it).
    await applier(broker_pb2.JobEvent(job_id=rendering, stage=jobs_pb2.STAGE_QUEUED, attempt=1, retry_in_s=1,
                                      error="ffmpeg: out of memory", source="renderer", replica="renderer-0"), None)
    await applier(broker_pb2.JobEvent(job_id=pinning, stage=jobs_pb2.STAGE_RENDERED, attempt=1, retry_in_s=5,
                                      error="pinata: 503", source="pinner", replica="pinner-0"), None)
    # One pin job dead-lettered (the watch records it) and replayed by an operator.
    await broker.publish(topo.dead_letter_exchange, topo.pin_queue, broker_pb2.PinJob(job_id=parked),
                         headers={REASON_HEADER: "pinata: 401"}, message_id=parked)
    from status.jobs.history import note_dead_letter

    await note_dead_letter(store, parked, "pin", parked, "pinata: 401", "pinner")
    await wait_for(lambda: probe.ready(topo.dead_queue(topo.pin_queue)))
    assert (await client.post("/v1/admin/actions/replay/pin", headers=BEARER)).json()["replayed"] == 1
    await asyncio.sleep(1.2)  # the 1 s tier's message has left it by its TTL; the 5 s tier's has not

    queues = {(q["stage"], q["kind"], q["tier_seconds"]): q
              for q in (await client.get("/v1/admin/overview", headers=BEARER)).json()["queues"]}
    per_minute = pytest.approx(1 / 60)
    assert (queues[("render", "retry", 1)]["rate_in"], queues[("render", "retry", 1)]["rate_out"]) == (
        per_minute, per_minute)
    assert (queues[("pin", "retry", 5)]["rate_in"], queues[("pin", "retry", 5)]["rate_out"]) == (per_minute, 0)
    assert queues[("render", "retry", 5)]["rate_in"] == 0 and queues[("pin", "retry", 1)]["rate_in"] == 0
    assert (queues[("pin", "dead", None)]["rate_in"], queues[("pin", "dead", None)]["rate_out"]) == (
        per_minute, per_minute)
    assert queues[("render", "dead", None)]["rate_in"] == 0
    assert queues[("events", "dead", None)]["rate_out"] is None, "not known: shown as such, not as 0"


async def test_a_dead_letter_replayed_from_the_api_is_audited_and_its_history_says_so(ops, broker, probe, tmp_path):
    client, store = ops
    topo = broker.topology
    job_id = await new_job(store)
    await store.apply(broker_pb2.JobEvent(job_id=job_id, stage=jobs_pb2.STAGE_FAILED, error="renderer said no"))
    await broker.publish(topo.dead_letter_exchange, topo.render_queue, broker_pb2.RenderJob(
        job_id=job_id, scene="gen1", settings_json="{}", wallet=WALLET),
        headers={REASON_HEADER: "renderer said no"}, message_id=job_id)
    from status.jobs.history import note_dead_letter

    await note_dead_letter(store, job_id, "render", job_id, "renderer said no", "renderer")
    await wait_for(lambda: probe.ready(topo.dead_queue(topo.render_queue)))
    reply = await client.post(f"/v1/admin/actions/retry/{job_id}", headers=BEARER)
    assert reply.status_code == 200, reply.text
    assert reply.json()["replayed"] == 1 and "dead letter" in reply.json()["how"]
    back = await probe.take(topo.render_queue, timeout=5)
    assert broker_pb2.RenderJob.FromString(back.body).job_id == job_id
    detail = (await client.get(f"/v1/admin/jobs/{job_id}/detail", headers=BEARER)).json()
    assert detail["stage"] == "queued"
    assert detail["dead_letters"][0]["replayed_at"] is not None
    assert detail["audit"][0]["action"] == "retry" and detail["audit"][0]["outcome"] == "ok"
    assert detail["audit"][0]["actor"] == "admin (bearer)"

    # A cancelled job has no message left: retry renders it again, and lifts the cancel marker.
    cancelled = await new_job(store)
    assert (await client.post(f"/v1/admin/actions/cancel/{cancelled}", headers=BEARER)).status_code == 200
    artifacts = ArtifactStore(tmp_path / "artifacts")
    assert artifacts.is_cancelled(cancelled)
    again = await client.post(f"/v1/admin/actions/retry/{cancelled}", headers=BEARER)
    assert again.status_code == 200 and again.json()["how"] == "sent to the render queue again"
    assert not artifacts.is_cancelled(cancelled)
    assert broker_pb2.RenderJob.FromString((await probe.take(topo.render_queue, timeout=5)).body).job_id == cancelled
    conflict = await client.post(f"/v1/admin/actions/retry/{cancelled}", headers=BEARER)
    assert conflict.status_code == 409


async def test_the_overview_says_the_broker_is_unreachable_instead_of_failing(broker, rabbit_url, tmp_path,
                                                                               monkeypatch):
    """A partition (the broker's socket open, nothing coming back), then a cut: 200 with a warning both times."""
    import status.ops.overview
    from tests.integration.test_admin import CuttableLink

    monkeypatch.setattr(status.ops.overview, "BROKER_TIMEOUT", 1.0)
    link = CuttableLink(rabbit_url)
    linked = Broker(await link.start(), broker.topology, "ops-over-link")
    await linked.connect(attempts=3)
    try:
        async with store_and_bridge(linked, tmp_path, TOKEN, OPS) as (client, _store):
            assert (await client.get("/v1/admin/overview", headers=BEARER)).json()["broker_connected"] is True
            link.freeze()
            await asyncio.sleep(2.1)  # past the shared snapshot
            frozen = await client.get("/v1/admin/overview", headers=BEARER)
            assert frozen.status_code == 200 and frozen.json()["broker_connected"] is False
            assert "broker unreachable" in frozen.json()["warnings"][0]["text"]
            await link.cut()
            await wait_for(lambda: not linked.connected, timeout=10)
            await asyncio.sleep(2.1)
            gone = await client.get("/v1/admin/overview", headers=BEARER)
            assert gone.status_code == 200 and gone.json()["broker_connected"] is False
            assert (await client.get("/metrics")).status_code == 200
    finally:
        await link.cut()
        await linked.close()
