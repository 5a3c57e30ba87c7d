"""Relayed (gasless) mints on anvil: concurrency and nonces, idempotency, caps, the gas ceiling, stuck txs."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account
from web3.exceptions import TransactionNotFound

from tests.support.chain_status import running_status

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(120)]


async def test_twenty_relayed_mints_at_once_all_land_once_with_nonces_in_order(chain, tmp_path, db_url) -> None:
    wallets = [Account.create().address for _ in range(20)]
    async with running_status(chain, tmp_path, relay_per_wallet_daily=1, database_url=db_url) as status:
        jobs = [await status.pinned_job(w) for w in wallets]
        start_nonce = chain.w3.eth.get_transaction_count(chain.address_of(chain.relayer_key))
        replies = await asyncio.gather(*(status.client.post(f"/v1/jobs/{j}/mint", json={"relay": True})
                                         for j in jobs))
        assert all(r.status_code in (200, 202) for r in replies), [r.text for r in replies]
        assert all(r.json()["relayed"] for r in replies)
        # A second request for a job answers the first transaction; sends nothing.
        again = await status.client.post(f"/v1/jobs/{jobs[0]}/mint", json={"relay": True})
        assert again.json()["tx_hash"] == replies[0].json()["tx_hash"]
        for job_id, wallet in zip(jobs, wallets, strict=True):
            job = await status.wait_stage(job_id, "minted")
            assert chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
        hashes = [r.json()["tx_hash"] for r in replies]
        assert len(set(hashes)) == 20
        nonces = sorted(chain.w3.eth.get_transaction(h)["nonce"] for h in hashes)
        assert nonces == list(range(start_nonce, start_nonce + 20))
        assert chain.w3.eth.get_transaction_count(chain.address_of(chain.relayer_key)) == start_nonce + 20
        # The per-wallet cap: this wallet had its relayed mint today.
        capped = await status.pinned_job(wallets[0])
        reply = await status.client.post(f"/v1/jobs/{capped}/mint", json={"relay": True})
        assert reply.status_code == 429 and reply.json()["error"]["field"] == "wallet"
        metrics = (await status.client.get("/metrics")).text
        assert "mintpipe_relayer_balance_wei" in metrics


async def test_relay_refused_above_the_gas_ceiling(chain, tmp_path) -> None:
    async with running_status(chain, tmp_path, relay_max_gas_price_gwei=0.000001) as status:
        job_id = await status.pinned_job(Account.create().address)
        reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"relay": True})
        assert reply.status_code == 503 and "ceiling" in reply.json()["error"]["message"]
        assert (await status.job(job_id))["stage"] == "pinned"
        assert await status.runtime.deps.chain_store.relay(job_id) is None


async def test_a_stuck_relay_is_replaced_with_a_higher_fee_and_lands_once(chain, tmp_path) -> None:
    wallet = Account.create().address
    async with running_status(chain, tmp_path, relay_stuck_seconds=1.0) as status:
        job_id = await status.pinned_job(wallet)
        chain.rpc("evm_setAutomine", False)
        try:
            reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"relay": True})
            assert reply.status_code == 202 and reply.json()["state"] == "pending"
            first = await status.runtime.deps.chain_store.relay(job_id)
            deadline = time.monotonic() + 20
            while (current := await status.runtime.deps.chain_store.relay(job_id)).tx_hash == first.tx_hash:
                assert time.monotonic() < deadline, "the stuck relay was never replaced"
                await asyncio.sleep(0.2)
            assert current.nonce == first.nonce and current.max_fee > first.max_fee
            replacement = None
            while replacement is None:  # stored first, then broadcast: the node may learn of it a moment later
                assert time.monotonic() < deadline, "the replacement never reached the node"
                try:
                    replacement = chain.w3.eth.get_transaction(current.tx_hash)
                except TransactionNotFound:
                    await asyncio.sleep(0.1)
            assert replacement["nonce"] == first.nonce
            # Asking again answers the (current) transaction; nothing new is sent.
            again = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"relay": True})
            assert again.json()["tx_hash"] == current.tx_hash
        finally:
            chain.rpc("evm_setAutomine", True)
        chain.mine(1)
        job = await status.wait_stage(job_id, "minted")
        assert job["tx_hash"] == (await status.runtime.deps.chain_store.relay(job_id)).tx_hash
        assert chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
        assert chain.contract.functions.balanceOf(wallet).call() == 1


async def test_relays_stop_at_the_daily_cap(chain, tmp_path) -> None:
    async with running_status(chain, tmp_path, relay_daily=0) as status:
        job_id = await status.pinned_job(Account.create().address)
        reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"relay": True})
        assert reply.status_code == 429 and reply.json()["error"]["field"] == "relay"
    async with running_status(chain, tmp_path / "poor", relay_low_balance_eth=10**9) as status:
        deadline = time.monotonic() + 10
        while not (health := await status.client.get("/healthz")).json()["checks"]["chain"]:
            assert time.monotonic() < deadline, "the watcher never reached the node"
            await asyncio.sleep(0.1)
        # anvil's 10,000 ETH is below this mark: degraded, for that reason only.
        assert health.status_code == 503 and health.json()["checks"]["relayer_funds"] is False
    async with running_status(chain, tmp_path / "no-relayer", chain_relayer_key=None) as status:
        job_id = await status.pinned_job(Account.create().address)
        reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"relay": True})
        assert reply.status_code == 409 and "mint.tx" in reply.json()["error"]["message"]
        assert "relayer_funds" not in (await status.client.get("/healthz")).json()["checks"]
