"""Two minter replicas and two status replicas on one PostgreSQL database, on anvil: 50 relays asked for at once
through both bridges, and the active sender's broker connection cut midway (RabbitMQ hands the relay queue to the
other replica). Each job is minted exactly once, the relayer's nonces are consecutive, nothing says "nonce too
low", and the daily cap holds exactly across replicas."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account

from mintpipe.chain import job_id_to_bytes32
from tests.support.chain_status import OperatorsAccess, running_minter, running_status

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(180)]
JOBS, CAP = 50, 40


async def test_fifty_relays_through_two_bridges_and_two_minters_mint_each_job_once(chain, tmp_path, pg_dsn,
                                                                                   amqp, lines) -> None:
    settings = {"database_url": pg_dsn, "relay_daily": CAP, "relay_per_wallet_daily": 1}
    relayer = chain.address_of(chain.relayer_key)
    start_nonce = chain.w3.eth.get_transaction_count(relayer)
    minted_before = chain.contract.functions.totalMinted().call()
    async with running_minter(chain, tmp_path / "m0", amqp, **settings) as first, \
            running_minter(chain, tmp_path / "m1", amqp, **settings) as second, \
            running_status(chain, tmp_path / "s0", amqp=amqp, minter=first, database_url=pg_dsn) as bridge0, \
            running_status(chain, tmp_path / "s1", amqp=amqp, minter=second, database_url=pg_dsn) as bridge1:
        wallets = [Account.create().address for _ in range(JOBS)]
        jobs = [await bridge0.pinned_job(w) for w in wallets]
        bridges = [bridge0, bridge1]

        async def ask(i: int, job_id: str):
            return await bridges[i % 2].relay(job_id)

        asking = asyncio.gather(*(ask(i, j) for i, j in enumerate(jobs)))
        # The active sender (the queue's first consumer) loses its broker connection once a few relays went out.
        deadline = time.monotonic() + 60
        while first.relayer.counts["sent"] + second.relayer.counts["sent"] < 8:
            assert time.monotonic() < deadline, "no relay was sent"
            await asyncio.sleep(0.05)
        active = first if first.relayer.counts["sent"] else second
        standby = second if active is first else first
        await active.broker._connection.close()  # type: ignore[union-attr]
        replies = await asking
        # Every request that was not refused is minted, once; the cap held exactly across both replicas.
        accepted = [j for j, r in zip(jobs, replies, strict=True) if r.status_code == 202]
        refused = [j for j, r in zip(jobs, replies, strict=True) if r.status_code == 429]
        assert all(r.json()["error"]["code"] == "relay_cap" for r in replies if r.status_code == 429)
        for job_id in accepted:
            job = await bridges[1].wait_stage(job_id, "minted", timeout=60)
            assert chain.contract.functions.tokenOfJob(job_id_to_bytes32(job_id)).call() == job["token_id"]
        rows = {r["job_id"]: r for r in await first.store.db.fetch("SELECT * FROM minter_relays")}
        odd = {j: (dict(rows[j]), replies[jobs.index(j)].text) for j in refused if j in rows}
        assert not odd, odd  # a refused job has no relay
        assert len(accepted) == CAP and len(refused) == JOBS - CAP, (len(rows), len(accepted))
        assert chain.contract.functions.totalMinted().call() == minted_before + CAP
        for job_id in refused:
            assert chain.contract.functions.tokenOfJob(job_id_to_bytes32(job_id)).call() == 0
            assert (await bridge0.job(job_id))["stage"] == "pinned"
        # Nonces: consecutive from where the relayer stood, no gap, no duplicate, none wasted.
        rows = await first.store.db.fetch("SELECT nonce, tx_hash FROM minter_relays ORDER BY nonce")
        assert [r["nonce"] for r in rows] == list(range(start_nonce, start_nonce + CAP))
        assert chain.w3.eth.get_transaction_count(relayer) == start_nonce + CAP
        assert standby.relayer.counts["sent"] > 0, "the other replica never took over"
    assert "nonce too low" not in lines.raw().lower()


async def test_the_operators_overview_shows_the_minter_queues_and_who_is_active(chain, tmp_path, pg_dsn, amqp,
                                                                                broker) -> None:
    token = "minter-overview-token"
    settings = {"database_url": pg_dsn, "chain_poll_seconds": 0.5}
    async with running_minter(chain, tmp_path / "m0", amqp, **settings) as first, \
            running_minter(chain, tmp_path / "m1", amqp, **settings) as second, \
            running_status(chain, tmp_path / "s0", amqp=amqp, minter=first, database_url=pg_dsn,
                           operators=OperatorsAccess(broker, token)) as status:
        deadline = time.monotonic() + 30
        while True:  # a sweep reaches the active sender every 5 s: then both roles are known
            overview = (await status.client.get("/v1/admin/overview",
                                                headers={"Authorization": f"Bearer {token}"})).json()
            minters = overview["minters"] or []
            if len(minters) == 2 and any(m["sending"] for m in minters) and any(m["watching"] for m in minters):
                break
            assert time.monotonic() < deadline, overview["minters"]
            await asyncio.sleep(0.5)
        assert {m["name"] for m in minters} == {first.duty.name, second.duty.name}
        assert sum(m["watching"] for m in minters) == 1 and sum(m["sending"] for m in minters) == 1
        assert all(m["relayer"] == chain.address_of(chain.relayer_key) for m in minters)
        work = {q["stage"]: q for q in overview["queues"] if q["kind"] == "work"}
        # A single-active-consumer queue counts its active consumer only (RabbitMQ's declare-ok).
        assert work["relay"]["consumers"] == 1 and work["watch"]["consumers"] == 1
        assert not [w for w in overview["warnings"] if "minter" in w["text"]]
        # The watcher goes away on one replica: the other takes the watch queue over.
        watching = first if next(m for m in minters if m["watching"])["name"] == first.duty.name else second
        await watching.stop()
        other = second if watching is first else first
        deadline = time.monotonic() + 20
        while not other.duty.active:
            assert time.monotonic() < deadline, "the other replica never watched"
            await asyncio.sleep(0.2)
