"""The chain watcher on anvil: unreported mints, a restart in between, reorgs before and after confirmation,
and a node that goes away."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.chain import TestChain, running_chain
from tests.support.chain_status import Status, running_status, send_tx

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(120)]


async def test_the_watcher_catches_a_mint_nobody_reported(chain, status) -> None:
    wallet = chain.address_of(chain.collector_keys[4])
    job_id = await status.pinned_job(wallet)
    tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[4])
    job = await status.wait_stage(job_id, "minted")
    assert job["tx_hash"] == tx_hash and chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
    health = (await status.client.get("/healthz")).json()
    assert health["checks"]["chain"] is True


async def test_a_restart_in_between_loses_nothing_and_counts_nothing_twice(chain, tmp_path) -> None:
    wallet = chain.address_of(chain.collector_keys[5])
    async with running_status(chain, tmp_path) as first:
        early = await first.pinned_job(wallet)
        late = await first.pinned_job(wallet)
        send_tx(chain, (await first.job(early))["mint"]["tx"], chain.collector_keys[5])
        await first.wait_stage(early, "minted")
        late_tx = (await first.job(late))["mint"]["tx"]
        cursor_before = await first.runtime.deps.chain_store.cursor()
    late_hash = send_tx(chain, late_tx, chain.collector_keys[5])  # while status is down
    chain.mine(3)
    async with running_status(chain, tmp_path) as second:
        job = await second.wait_stage(late, "minted")
        assert job["tx_hash"] == late_hash
        cursor_after = await second.runtime.deps.chain_store.cursor()
        assert cursor_after[0] > cursor_before[0]
        minted = [j for j in (await second.client.get("/v1/jobs", params={"stage": "minted"})).json()["jobs"]]
        assert sorted(j["job_id"] for j in minted) == sorted([early, late])
        assert await second.store.db.fetchval("SELECT COUNT(*) FROM mints") == 2
        tokens = {j["token_id"] for j in minted}
        assert len(tokens) == 2


async def reported_mint(chain: TestChain, status: Status, wallet: str):
    """A pinned job minted from collector 6's account and reported, after a chain snapshot to revert to."""
    job_id = await status.pinned_job(wallet)
    snapshot = chain.snapshot()
    tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[6])
    return job_id, snapshot, await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})


async def test_a_reorg_before_confirmations_leaves_no_minted_job(chain, tmp_path) -> None:
    wallet = chain.address_of(chain.collector_keys[6])
    async with running_status(chain, tmp_path, chain_confirmations=2) as status:
        job_id, snapshot, reply = await reported_mint(chain, status, wallet)
        assert reply.status_code == 202 and reply.json()["state"] == "confirming"
        assert reply.json()["required_confirmations"] == 2
        assert chain.revert(snapshot)
        chain.mine(4)  # the chain goes on past the depth, without the mint
        deadline = time.monotonic() + 15
        while await status.runtime.deps.chain_store.mint(job_id) is not None:  # the watcher forgets it
            assert time.monotonic() < deadline, "the reorged-away mint was never forgotten"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # more watcher rounds: nothing brings it back
        job = await status.job(job_id)
        assert job["stage"] == "pinned" and job["token_id"] is None
        assert await status.runtime.deps.chain_store.mint(job_id) is None
        # The job can still be minted afterwards, and then it is, once confirmed.
        tx_hash = send_tx(chain, job["mint"]["tx"], chain.collector_keys[6])
        chain.mine(2)
        job = await status.wait_stage(job_id, "minted")
        assert job["tx_hash"] == tx_hash


async def test_a_mint_undone_by_a_reorg_is_undone_in_the_store(chain, tmp_path) -> None:
    wallet = chain.address_of(chain.collector_keys[6])
    async with running_status(chain, tmp_path, chain_confirmations=0) as status:
        job_id, snapshot, reply = await reported_mint(chain, status, wallet)
        assert reply.status_code == 200 and (await status.job(job_id))["stage"] == "minted"
        assert chain.revert(snapshot)
        chain.mine(2)
        job = await status.wait_stage(job_id, "pinned")
        assert job["token_id"] is None and job["mint"] is not None


async def test_node_down_backs_off_shows_in_health_and_crashes_nothing(tmp_path) -> None:
    with running_chain(tmp_path / "own-chain") as own:
        async with running_status(own, tmp_path) as status:
            job_id = await status.pinned_job(own.address_of(own.collector_keys[0]))
            await asyncio.sleep(0.5)
            assert (await status.client.get("/healthz")).json()["checks"]["chain"] is True
            own.anvil.stop()  # the node goes away
            deadline = time.monotonic() + 20
            while (await status.client.get("/healthz")).status_code != 503:
                assert time.monotonic() < deadline, "health never showed the node down"
                await asyncio.sleep(0.2)
            health = (await status.client.get("/healthz")).json()
            assert health["checks"]["chain"] is False and health["status"] == "degraded"
            assert status.runtime.watcher.last_error
            job = await status.job(job_id)  # reads still work: the voucher is signed offline
            assert job["stage"] == "pinned" and job["mint"]["signature"].startswith("0x")
            reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": "0x" + "cd" * 32})
            assert reply.status_code == 503 and reply.headers["Retry-After"] == "30"
            assert not any(t.done() for t in status.runtime.tasks)  # the watcher and relayer loops live on
