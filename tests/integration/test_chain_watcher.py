"""The chain watcher on anvil: unreported mints, a restart in between, reorgs before and after confirmation,
and a node that goes away."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.chain import TestChain, running_chain
from tests.support.chain_status import Status, running_status, send_tx
from tests.support.rpc_proxy import RpcProxy

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(120)]


async def test_the_watcher_catches_a_mint_nobody_reported(chain, status) -> None:
    wallet = chain.address_of(chain.collector_keys[4])
    job_id = await status.pinned_job(wallet)
    tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[4])
    job = await status.wait_stage(job_id, "minted")
    assert job["tx_hash"] == tx_hash and chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
    health = (await status.client.get("/healthz")).json()
    assert health["checks"]["minter"] is True


async def test_a_restart_in_between_loses_nothing_and_counts_nothing_twice(chain, tmp_path, amqp) -> None:
    wallet = chain.address_of(chain.collector_keys[5])
    async with running_status(chain, tmp_path, amqp=amqp) as first:
        early = await first.pinned_job(wallet)
        late = await first.pinned_job(wallet)
        send_tx(chain, (await first.job(early))["mint"]["tx"], chain.collector_keys[5])
        await first.wait_stage(early, "minted")
        late_tx = (await first.job(late))["mint"]["tx"]
        cursor_before = await first.minter.store.cursor()
    late_hash = send_tx(chain, late_tx, chain.collector_keys[5])  # while status is down
    chain.mine(3)
    async with running_status(chain, tmp_path, amqp=amqp) as second:
        job = await second.wait_stage(late, "minted")
        assert job["tx_hash"] == late_hash
        cursor_after = await second.minter.store.cursor()
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


async def test_a_reorg_before_confirmations_leaves_no_minted_job(chain, tmp_path, amqp) -> None:
    wallet = chain.address_of(chain.collector_keys[6])
    async with running_status(chain, tmp_path, amqp=amqp, chain_confirmations=2) as status:
        job_id, snapshot, reply = await reported_mint(chain, status, wallet)
        assert reply.status_code == 202 and reply.json()["state"] == "confirming"
        assert reply.json()["required_confirmations"] == 2
        assert chain.revert(snapshot)
        chain.mine(4)  # the chain goes on past the depth, without the mint
        deadline = time.monotonic() + 15
        while await status.minter.store.mint(job_id) is not None:  # the watcher forgets it
            assert time.monotonic() < deadline, "the reorged-away mint was never forgotten"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # more watcher rounds: nothing brings it back
        job = await status.job(job_id)
        assert job["stage"] == "pinned" and job["token_id"] is None
        assert await status.minter.store.mint(job_id) is None
        # The job can still be minted afterwards, and then it is, once confirmed.
        tx_hash = send_tx(chain, job["mint"]["tx"], chain.collector_keys[6])
        chain.mine(2)
        job = await status.wait_stage(job_id, "minted")
        assert job["tx_hash"] == tx_hash


async def test_a_mint_undone_by_a_reorg_is_undone_in_the_store(chain, tmp_path, amqp) -> None:
    wallet = chain.address_of(chain.collector_keys[6])
    async with running_status(chain, tmp_path, amqp=amqp, chain_confirmations=0) as status:
        job_id, snapshot, reply = await reported_mint(chain, status, wallet)
        assert reply.status_code == 200 and (await status.job(job_id))["stage"] == "minted"
        assert chain.revert(snapshot)
        chain.mine(2)
        job = await status.wait_stage(job_id, "pinned")
        assert job["token_id"] is None and job["mint"] is not None


async def test_node_down_backs_off_shows_in_health_and_crashes_nothing(tmp_path, amqp) -> None:
    with running_chain(tmp_path / "own-chain") as own:
        async with running_status(own, tmp_path, amqp=amqp) as status:
            job_id = await status.pinned_job(own.address_of(own.collector_keys[0]))
            deadline = time.monotonic() + 10
            while await status.minter.health() != "SERVING":
                assert time.monotonic() < deadline, "the minter never served"
                await asyncio.sleep(0.1)
            job = await status.job(job_id)
            own.anvil.stop()  # the node goes away
            deadline = time.monotonic() + 20
            while await status.minter.health() != "NOT_SERVING":
                assert time.monotonic() < deadline, "health never showed the node down"
                await asyncio.sleep(0.2)
            assert status.minter.watcher.last_error and not status.minter.watcher.healthy
            again = await status.job(job_id)  # reads still work: the voucher was signed offline and is kept
            assert again["stage"] == "pinned" and again["mint"] == job["mint"]
            reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": "0x" + "cd" * 32})
            assert reply.status_code == 503 and reply.headers["Retry-After"] == "30"
            assert status.minter.duty._ticker is not None and not status.minter.duty._ticker.done()


async def test_a_twenty_block_reorg_after_the_mint_was_minted_undoes_it(chain, tmp_path, amqp) -> None:
    """Deeper than the old recheck window (12 blocks): mints are rechecked until final (finality depth 64)."""
    wallet = chain.address_of(chain.collector_keys[6])
    async with running_status(chain, tmp_path, amqp=amqp, chain_confirmations=2) as status:
        job_id = await status.pinned_job(wallet)
        snapshot = chain.snapshot()
        send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[6])
        chain.mine(20)
        await status.wait_stage(job_id, "minted")
        assert chain.revert(snapshot)
        chain.mine(25)  # another fork, longer, without the mint
        job = await status.wait_stage(job_id, "pinned")
        assert job["token_id"] is None and job["mint"] is not None
        assert await status.minter.store.mint(job_id) is None


async def test_a_node_that_answers_without_the_logs_erases_no_mint(chain, tmp_path, amqp) -> None:
    """A load-balanced node whose lagging backend answers eth_getLogs with nothing: the contract still holds the
    token, so the mint stays."""
    wallet = chain.address_of(chain.collector_keys[5])
    async with RpcProxy(chain.url) as proxy:
        async with running_status(chain, tmp_path, amqp=amqp, chain_rpc_url=proxy.url,
                                  chain_confirmations=1) as status:
            job_id = await status.pinned_job(wallet)
            send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[5])
            chain.mine(2)
            await status.wait_stage(job_id, "minted")
            proxy.empty_logs = True
            rounds = status.minter.watcher.rounds
            await asyncio.sleep(2)  # ten rounds at 0.2 s
            assert status.minter.watcher.rounds >= rounds + 5
            assert (await status.job(job_id))["stage"] == "minted"
            assert (await status.minter.store.mint(job_id)).state in ("minted", "final")


async def test_the_watcher_costs_a_few_calls_a_round_whatever_the_mints(chain, tmp_path, amqp) -> None:
    """Logs by range, never a receipt per mint: 3 calls a round (+ a tenth for the finalized block)."""
    async with RpcProxy(chain.url) as proxy:
        async with running_status(chain, tmp_path, amqp=amqp, chain_rpc_url=proxy.url,
                                  chain_confirmations=2) as status:
            jobs = [await status.pinned_job(chain.address_of(chain.collector_keys[i % 3])) for i in range(12)]
            for i, job_id in enumerate(jobs):
                send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[i % 3])
            chain.mine(3)
            for job_id in jobs:
                await status.wait_stage(job_id, "minted")
            proxy.calls.clear()
            rounds = status.minter.watcher.rounds
            await asyncio.sleep(3)
            done = status.minter.watcher.rounds - rounds
            assert done >= 5
            assert proxy.calls["eth_getTransactionReceipt"] == 0
            assert proxy.total <= done * 3 + 2, (done, proxy.calls)


async def test_a_reorg_between_the_logs_and_the_cursor_records_nothing_of_the_old_fork(chain, tmp_path,
                                                                                     amqp) -> None:
    """The logs were read on one fork, the head on another: the round is retried and the cursor's hash is the
    new fork's; the old fork's mint is never recorded."""
    wallet = chain.address_of(chain.collector_keys[4])
    async with RpcProxy(chain.url) as proxy:
        async with running_status(chain, tmp_path, amqp=amqp, chain_rpc_url=proxy.url,
                                  chain_poll_seconds=60) as status:
            job_id = await status.pinned_job(wallet)
            tx = (await status.job(job_id))["mint"]["tx"]
            snapshot = chain.snapshot()
            send_tx(chain, tx, chain.collector_keys[4])

            def reorg() -> None:
                assert chain.revert(snapshot)
                chain.mine(5)  # a longer fork without the mint

            published: list[str] = []
            facts = status.minter.watcher.facts
            original = facts.minted

            async def counted(job: str, *args: object) -> None:
                published.append(job)
                await original(job, *args)

            facts.minted = counted  # type: ignore[method-assign]
            proxy.after_get_logs = reorg
            await status.minter.duty.poke()
            deadline = time.monotonic() + 20
            while proxy.after_get_logs is not None or status.minter.watcher.rounds < 2:
                assert time.monotonic() < deadline, "the watcher never read the logs"
                await status.minter.duty.poke()
                await asyncio.sleep(0.3)
            await asyncio.sleep(0.5)
            assert job_id not in published  # never announced, not even for a moment
            assert await status.minter.store.mint(job_id) is None
            assert (await status.job(job_id))["stage"] == "pinned"
            block, block_hash = await status.minter.store.cursor()
            assert chain.w3.eth.get_block(block)["hash"].to_0x_hex() == block_hash
