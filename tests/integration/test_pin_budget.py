"""The monthly pin budget is enforced by the gateway, up front, before anything is queued or rendered."""

from __future__ import annotations

import json

import grpc
import pytest

from mintpipe.core.scenes import settings_hash, validate_settings
from mintpipe.db.core import database_for
from mintpipe.pin_ledger import PINS_PER_JOB, PinLedger
from mintpipe.v1 import broker_pb2, gateway_pb2
from status.errors import from_grpc
from tests.support.gateway import running_gateway

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture
async def budgeted(broker, tmp_path, db_url):
    """A gateway whose plan allows two jobs' worth of pins this month (its ledger on either engine)."""
    ledger = PinLedger(database_for(db_url, tmp_path / "pins.sqlite3"))
    async with running_gateway(broker, tmp_path, ledger=ledger, monthly_pins=2 * PINS_PER_JOB) as side:
        yield side.gateway, side.store, ledger
    await ledger.close()


def submit(seed: int, key: str = "") -> gateway_pb2.SubmitJobRequest:
    return gateway_pb2.SubmitJobRequest(settings_json=json.dumps({"seed": seed}), wallet=WALLET, idempotency_key=key)


async def queued_jobs(broker, probe) -> list[str]:
    return [broker_pb2.RenderJob.FromString(m.body).job_id for m in await probe.drain(broker.topology.render_queue)]


async def test_a_job_the_budget_cannot_cover_is_refused_before_anything_is_queued(budgeted, broker, probe):
    stub, store, _ledger = budgeted
    accepted = [await stub.SubmitJob(submit(seed), timeout=10) for seed in (1, 2)]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.SubmitJob(submit(3, key="third"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "monthly pin budget (8)" in refused.value.details() and "0 used, 8 held" in refused.value.details()

    # Nothing of the refused job remains: not in the store, not on the queue, and its key is free again.
    records, _ = await store.list(limit=10)
    assert sorted(r.job_id for r in records) == sorted(a.job_id for a in accepted)
    assert sorted(await queued_jobs(broker, probe)) == sorted(a.job_id for a in accepted)

    # Over HTTP this is a 429 whose reason names the budget.
    error = from_grpc(refused.value)
    assert error.status == 429 and "monthly pin budget" in error.message


async def test_pins_already_made_this_month_count_and_settings_already_pinned_cost_nothing(budgeted, broker, probe):
    stub, _store, ledger = budgeted
    for n in range(PINS_PER_JOB):  # an earlier job's pins, this month
        await ledger.record_pin(f"bafkreiearlier{n}", 100, "0" * 32)
    seed_one_hash = settings_hash("gen1", validate_settings("gen1", {"seed": 1}))
    await ledger.record_job_pinned("0" * 32, seed_one_hash)

    first = await stub.SubmitJob(submit(5), timeout=10)  # 4 used + 4 held = the whole budget
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.SubmitJob(submit(6), timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4 used, 4 held" in refused.value.details()

    # The same settings as a pinned job give the same bytes and CIDs: nothing new to pin, so it is accepted.
    again = await stub.SubmitJob(submit(1), timeout=10)
    assert again.created
    assert sorted(await queued_jobs(broker, probe)) == sorted([first.job_id, again.job_id])


async def test_a_retry_with_the_same_key_is_not_charged_twice(budgeted, broker, probe):
    stub, _store, _ledger = budgeted
    one = await stub.SubmitJob(submit(1, key="k1"), timeout=10)
    for _ in range(3):
        same = await stub.SubmitJob(submit(1, key="k1"), timeout=10)
        assert same.job_id == one.job_id and not same.created
    second = await stub.SubmitJob(submit(2, key="k2"), timeout=10)  # still within two jobs' worth
    assert second.created
    assert len(await queued_jobs(broker, probe)) == 2


def test_over_http_a_job_the_budget_cannot_cover_is_a_429_naming_the_budget(rabbit_url, tmp_path):
    """The same refusal as the front end sees it: the bridge over real HTTP, the real gateway behind it."""
    import httpx

    from tests.support.live_bridge import live_bridge

    ledger = PinLedger(tmp_path / "pins.sqlite3")
    body = {"settings": {"seed": 1}, "wallet": WALLET}
    with live_bridge(rabbit_url, tmp_path, gateway_options={"ledger": ledger, "monthly_pins": PINS_PER_JOB}) as url, \
            httpx.Client(base_url=url, timeout=20) as http:
        assert http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "b-1"}).status_code == 202
        refused = http.post("/v1/jobs", json={**body, "settings": {"seed": 2}}, headers={"Idempotency-Key": "b-2"})
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["field"] == "pin_budget" and "monthly pin budget" in error["message"]
        assert int(refused.headers["Retry-After"]) >= 1
        assert len(http.get("/v1/jobs").json()["jobs"]) == 1, "the refused job was kept"
        # Its key was let go with it: the same key with another body is not a 409.
        again = http.post("/v1/jobs", json={**body, "settings": {"seed": 3}}, headers={"Idempotency-Key": "b-2"})
        assert again.status_code == 429
