"""An operator re-sends a mint verification, on anvil: a reported mint left unconfirmed (the watcher stopped)
becomes minted once its transaction has its confirmations; an unreported one needs its hash; the read-only token
and a request without the CSRF token change nothing; every attempt is in the audit list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.chain import TestChain
from tests.support.chain_status import OperatorsAccess, Status, running_status, send_tx

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(120)]
TOKEN = "reverify-admin-token"
READONLY = "reverify-readonly-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def stalled(chain: TestChain, broker, tmp_path: Path, amqp) -> AsyncIterator[Status]:
    """Status with two confirmations required and the minter's watcher stopped (down, or far behind)."""
    async with running_status(chain, tmp_path, amqp=amqp, chain_confirmations=2,
                              operators=OperatorsAccess(broker, TOKEN, READONLY)) as status:
        await status.minter.stop_watching()
        yield status


async def audit(status: Status) -> list[tuple[str, str, str]]:
    entries = (await status.client.get("/v1/admin/audit", headers=BEARER)).json()["entries"]
    return [(e["action"], e["target"], e["outcome"]) for e in entries if e["action"] != "sign_in"]


async def test_a_reported_mint_left_unconfirmed_is_minted_by_a_reverification(chain, stalled) -> None:
    status = stalled
    wallet = chain.address_of(chain.collector_keys[0])
    job_id = await status.pinned_job(wallet)
    tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[0])
    reported = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})
    assert reported.status_code == 202 and reported.json()["state"] == "confirming"
    chain.mine(3)  # confirmed on chain now, but nothing looks any more
    assert (await status.job(job_id))["stage"] == "pinned"
    detail = (await status.client.get(f"/v1/admin/jobs/{job_id}/detail", headers=BEARER)).json()
    assert detail["chain"] is True
    assert detail["known_mint"]["tx_hash"] == tx_hash and detail["known_mint"]["confirmed"] is False

    viewer = await status.client.post(f"/v1/admin/actions/reverify/{job_id}",
                                      headers={"Authorization": f"Bearer {READONLY}"})
    assert viewer.status_code == 403
    signed = await status.client.post("/v1/admin/session", json={"token": TOKEN})
    csrf = signed.json()["csrf_token"]
    forged = await status.client.post(f"/v1/admin/actions/reverify/{job_id}")
    assert forged.status_code == 403 and forged.json()["error"]["field"] == "X-CSRF-Token"
    assert (await status.job(job_id))["stage"] == "pinned", "a refused action changed nothing"

    done = await status.client.post(f"/v1/admin/actions/reverify/{job_id}", headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["state"] == "minted" and result["stage"] == "minted" and result["source"] == "reported"
    assert result["confirmations"] >= 2 and result["tx_hash"] == tx_hash
    job = await status.job(job_id)
    assert job["stage"] == "minted" and job["token_id"] == result["token_id"] and job["tx_hash"] == tx_hash
    assert chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
    history = (await status.client.get(f"/v1/admin/jobs/{job_id}/detail")).json()["history"]
    assert (history[-1]["stage"], history[-1]["source"]) == ("minted", "admin")

    again = await status.client.post(f"/v1/admin/actions/reverify/{job_id}", headers={"X-CSRF-Token": csrf})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_minted"
    outcomes = [outcome for _, target, outcome in await audit(status) if target == job_id]
    assert outcomes[:4] == ["refused 409", "ok", "refused csrf", "refused forbidden"]


async def test_an_unreported_mint_needs_its_hash_and_a_wrong_one_is_refused_with_the_reason(chain, stalled) -> None:
    status = stalled
    wallet = chain.address_of(chain.collector_keys[1])
    job_id, other = await status.pinned_job(wallet), await status.pinned_job(wallet)
    tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[1])

    unknown = await status.client.post(f"/v1/admin/actions/reverify/{job_id}", headers=BEARER)
    assert unknown.status_code == 409 and unknown.json()["error"]["field"] == "tx_hash"
    mismatch = await status.client.post(f"/v1/admin/actions/reverify/{other}", headers=BEARER,
                                        json={"tx_hash": tx_hash})
    assert mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "job_mismatch"

    early = await status.client.post(f"/v1/admin/actions/reverify/{job_id}", headers=BEARER,
                                     json={"tx_hash": tx_hash})
    assert early.status_code == 200 and early.json()["state"] == "confirming"  # mined, 0 of 2 confirmations
    assert early.json()["source"] == "given"
    chain.mine(2)
    # Now known to the store (recorded by the first check): no hash needed.
    late = await status.client.post(f"/v1/admin/actions/reverify/{job_id}", headers=BEARER)
    assert late.status_code == 200 and late.json()["state"] == "minted", late.text
    assert (await status.job(job_id))["stage"] == "minted" and (await status.job(other))["stage"] == "pinned"
    outcomes = await audit(status)
    assert outcomes[:4] == [("reverify", job_id, "ok"), ("reverify", job_id, "ok"), ("reverify", other, "refused 422"),
                            ("reverify", job_id, "refused 409")]
