"""Relayed (gasless) mints on anvil, through the broker to the minter: concurrency and nonces, idempotency, caps,
the gas ceiling, stuck, reverted and expired relays, and who may ask for one."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account
from web3.exceptions import TransactionNotFound

from tests.support.chain_status import running_status, send_tx
from tests.support.rpc_proxy import RpcProxy

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(120)]


async def test_twenty_relayed_mints_at_once_all_land_once_with_nonces_in_order(chain, tmp_path, db_url,
                                                                                amqp) -> None:
    wallets = [Account.create().address for _ in range(20)]
    async with running_status(chain, tmp_path, amqp=amqp, relay_per_wallet_daily=1, database_url=db_url) as status:
        jobs = [await status.pinned_job(w) for w in wallets]
        start_nonce = chain.w3.eth.get_transaction_count(chain.address_of(chain.relayer_key))
        replies = await asyncio.gather(*(status.relay(j) for j in jobs))
        assert all(r.status_code in (200, 202) for r in replies), [r.text for r in replies]
        assert all(r.json()["relayed"] and r.json()["tx_hash"] for r in replies)
        # A second request for a job answers the first transaction; sends nothing.
        again = await status.relay(jobs[0])
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
        reply = await status.relay(capped)
        assert reply.status_code == 429 and reply.json()["error"]["field"] == "wallet", reply.text
        assert await status.minter.store.relay(capped) is None


async def test_a_stranger_who_knows_the_job_id_cannot_relay_it(chain, tmp_path, amqp) -> None:
    async with running_status(chain, tmp_path, amqp=amqp) as status:
        job_id = await status.pinned_job(Account.create().address)
        other = await status.pinned_job(Account.create().address)
        job = await status.job(job_id)
        assert "claim_token" not in job and status.claim(job_id) not in str(job)  # never answered by a GET
        reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"relay": True})
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "claim_required"
        for wrong in (status.claim(other), "x" * 43, "é"):
            reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"relay": True, "claim_token": wrong})
            assert reply.status_code == 403 and reply.json()["error"]["field"] == "claim_token", reply.text
        await asyncio.sleep(0.5)
        assert await status.minter.store.relay(job_id) is None
        assert (await status.job(job_id))["stage"] == "pinned"


async def test_six_hundred_relay_requests_from_one_address_cost_no_rpc_call_each(chain, tmp_path, amqp) -> None:
    async with RpcProxy(chain.url) as proxy:
        async with running_status(chain, tmp_path, amqp=amqp, chain_rpc_url=proxy.url, relay_ip_rate_per_minute=6,
                                  relay_ip_burst=5, chain_poll_seconds=60) as status:
            jobs = [await status.pinned_job(Account.create().address) for _ in range(5)]
            before = proxy.total
            codes = [(await status.relay(jobs[i % 5])).status_code for i in range(600)]
            assert codes[:5] == [202] * 5 or all(c in (200, 202) for c in codes[:5]), codes[:5]
            assert codes[5:].count(429) == 595
            # Five relays cost their calls (estimate, fees, balance, nonce, send); the 595 refusals none.
            assert proxy.total - before < 5 * 12, proxy.calls


async def test_relay_refused_above_the_gas_ceiling(chain, tmp_path, amqp) -> None:
    async with running_status(chain, tmp_path, amqp=amqp, relay_max_gas_price_gwei=0.000001) as status:
        job_id = await status.pinned_job(Account.create().address)
        reply = await status.relay(job_id)
        assert reply.status_code == 503 and "ceiling" in reply.json()["error"]["message"], reply.text
        assert (await status.job(job_id))["stage"] == "pinned"
        assert await status.minter.store.relay(job_id) is None


async def test_a_stuck_relay_is_replaced_with_a_higher_fee_and_lands_once(chain, tmp_path, amqp) -> None:
    wallet = Account.create().address
    async with running_status(chain, tmp_path, amqp=amqp, relay_stuck_seconds=1.0) as status:
        job_id = await status.pinned_job(wallet)
        chain.rpc("evm_setAutomine", False)
        try:
            reply = await status.relay(job_id)
            assert reply.status_code == 202 and reply.json()["state"] == "pending", reply.text
            first = await status.minter.store.relay(job_id)
            deadline = time.monotonic() + 30
            while (current := await status.minter.store.relay(job_id)).tx_hash == first.tx_hash:
                assert time.monotonic() < deadline, "the stuck relay was never replaced"
                await asyncio.sleep(0.2)
            assert current.nonce == first.nonce and current.max_fee >= first.max_fee * 9 // 8
            # Stored only once the node accepted it: the node knows the stored hash.
            replacement = chain.w3.eth.get_transaction(current.tx_hash)
            assert replacement["nonce"] == first.nonce
            again = await status.relay(job_id)
            assert again.json()["tx_hash"] in (first.tx_hash, current.tx_hash)
        finally:
            chain.rpc("evm_setAutomine", True)
        chain.mine(1)
        job = await status.wait_stage(job_id, "minted")
        assert job["tx_hash"] == (await status.minter.store.relay(job_id)).tx_hash
        assert chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
        assert chain.contract.functions.balanceOf(wallet).call() == 1


async def test_a_relay_that_reverts_because_the_wallet_minted_first_leaves_the_job_minted(chain, tmp_path,
                                                                                        amqp) -> None:
    collector = chain.collector_keys[2]
    wallet = chain.address_of(collector)
    async with running_status(chain, tmp_path, amqp=amqp) as status:
        job_id = await status.pinned_job(wallet)
        tx = (await status.job(job_id))["mint"]["tx"]
        chain.rpc("evm_setAutomine", False)
        try:
            reply = await status.relay(job_id)
            assert reply.status_code == 202, reply.text
            relay_hash = reply.json()["tx_hash"]
            # The collector sends the public voucher too, paying more: mined first, the relay reverts.
            sender = Account.from_key(collector)
            own = chain.w3.eth.send_raw_transaction(sender.sign_transaction({
                "to": tx["to"], "data": tx["data"], "value": 0, "nonce": chain.w3.eth.get_transaction_count(
                    wallet, "pending"), "chainId": chain.chain_id, "gas": 400_000,
                "maxFeePerGas": 500 * 10**9, "maxPriorityFeePerGas": 100 * 10**9}).raw_transaction).to_0x_hex()
            chain.mine(1)
        finally:
            chain.rpc("evm_setAutomine", True)
        assert chain.w3.eth.get_transaction_receipt(relay_hash)["status"] == 0
        job = await status.wait_stage(job_id, "minted")
        assert job["tx_hash"] == own and chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
        deadline = time.monotonic() + 20
        while (await status.minter.store.relay(job_id)).state != "done":  # the sweep settles it, sends nothing
            assert time.monotonic() < deadline, await status.minter.store.relay(job_id)
            await asyncio.sleep(0.2)
        assert (await status.minter.store.relay(job_id)).tx_hash == relay_hash


async def test_relays_stop_at_the_daily_caps_and_health_tells_an_unfunded_relayer(chain, tmp_path, amqp) -> None:
    async with running_status(chain, tmp_path, amqp=amqp, relay_daily=0) as status:
        job_id = await status.pinned_job(Account.create().address)
        reply = await status.relay(job_id)
        assert reply.status_code == 429 and reply.json()["error"]["field"] == "relay"
    async with running_status(chain, tmp_path / "budget", amqp=amqp, relay_daily_budget_eth=0.0000001) as status:
        job_id = await status.pinned_job(Account.create().address)
        reply = await status.relay(job_id)
        assert reply.status_code == 429 and reply.json()["error"]["code"] == "relay_budget", reply.text
    async with running_status(chain, tmp_path / "poor", amqp=amqp, relay_low_balance_eth=10**9) as status:
        deadline = time.monotonic() + 10
        while await status.minter.health() != "NOT_SERVING":
            assert time.monotonic() < deadline, "the minter never said its relayer is unfunded"
            await asyncio.sleep(0.1)
        assert status.minter.relayer.funded is False  # anvil's 10,000 ETH is below this mark
    async with running_status(chain, tmp_path / "no-relayer", amqp=amqp, chain_relayer_key=None) as status:
        job_id = await status.pinned_job(Account.create().address)
        reply = await status.relay(job_id)
        assert reply.status_code == 409 and "mint.tx" in reply.json()["error"]["message"]
        deadline = time.monotonic() + 10
        while await status.minter.health() != "SERVING":  # no relayer: nothing to fund, nothing degraded
            assert time.monotonic() < deadline, "the minter without a relayer never served"
            await asyncio.sleep(0.1)


async def test_a_relay_mined_after_its_deadline_is_renewed_with_a_fresh_voucher(chain, tmp_path, amqp) -> None:
    """Last in this module: it moves the chain's clock a minute ahead."""
    wallet = Account.create().address
    async with running_status(chain, tmp_path, amqp=amqp, chain_voucher_seconds=60) as status:
        job_id = await status.pinned_job(wallet)
        chain.rpc("evm_setAutomine", False)
        try:
            reply = await status.relay(job_id)
            assert reply.status_code == 202, reply.text
            first = await status.minter.store.relay(job_id)
            chain.rpc("evm_setNextBlockTimestamp", first.deadline + 1)
            chain.mine(1)
        finally:
            chain.rpc("evm_setAutomine", True)
        receipt = chain.w3.eth.get_transaction_receipt(first.tx_hash)
        assert receipt["status"] == 0  # VoucherExpired
        job = await status.wait_stage(job_id, "minted", timeout=40)
        renewed = await status.minter.store.relay(job_id)
        assert renewed.attempts == 2 and renewed.nonce > first.nonce and renewed.deadline > first.deadline
        assert job["tx_hash"] == renewed.tx_hash and chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
        with pytest.raises(TransactionNotFound):
            chain.w3.eth.get_transaction("0x" + "00" * 32)
        _ = send_tx
