"""Status on a real chain (anvil): the mint object, verifying reported mints (every kind of wrong answer), the
watcher (unreported mints, restarts, reorgs), relayed mints. The job store is the real SQLite one; jobs are put
at `pinned` by applying the pinner's event, as the events consumer does."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from eth_account import Account

from mintpipe.chain import job_id_to_bytes32
from mintpipe.grpc_runtime import GrpcServer
from mintpipe.ipfs_store import LocalIpfsStore
from mintpipe.v1 import broker_pb2, gateway_pb2_grpc, jobs_pb2, status_pb2, status_pb2_grpc
from status.bus import JobBus
from status.chain_api import JobView
from status.chain_runtime import ChainRuntime, start_chain
from status.grpc_api import StatusService
from status.http_api import BridgeDeps, create_app
from status.settings import StatusSettings
from status.store import JobStore
from tests.support.chain import TestChain, running_chain

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(120)]


@dataclass
class Status:
    store: JobStore
    runtime: ChainRuntime
    client: httpx.AsyncClient
    settings: StatusSettings

    async def pinned_job(self, wallet: str, token_uri: str | None = None) -> str:
        record, _ = await self.store.reserve(uuid.uuid4().hex, uuid.uuid4().hex * 2, wallet, "gen1", "{}")
        uri = token_uri or f"ipfs://bafk{uuid.uuid4().hex}"
        await self.store.apply(broker_pb2.JobEvent(job_id=record.job_id, stage=jobs_pb2.STAGE_PINNED, progress=100,
                                                   token_uri=uri))
        return record.job_id

    async def job(self, job_id: str) -> dict:
        reply = await self.client.get(f"/v1/jobs/{job_id}")
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def wait_stage(self, job_id: str, stage: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job["stage"] == stage:
                return job
            assert time.monotonic() < deadline, f"job still {job['stage']}, not {stage}"
            await asyncio.sleep(0.1)



@asynccontextmanager
async def running_status(chain: TestChain, data_dir: Path, **overrides: object) -> AsyncIterator[Status]:
    """The status service's store, chain side and HTTP app, as `python -m status` wires them (no broker)."""
    values: dict[str, object] = {
        "data_dir": data_dir, "chain_rpc_url": chain.url, "chain_contract": chain.address,
        "chain_signer_key": chain.signer_key, "chain_relayer_key": chain.relayer_key, "chain_confirmations": 0,
        "chain_poll_seconds": 0.2, **overrides}
    settings = StatusSettings(**values)
    store = JobStore(settings.database)
    await store.open()
    bus = JobBus()
    runtime = await start_chain(settings, store, bus)
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # the gateway: never called here
    app = create_app(BridgeDeps(store=store, bus=bus, gateway=gateway_pb2_grpc.GatewayServiceStub(channel),
                                ipfs=LocalIpfsStore(data_dir / "ipfs"), checks=dict(runtime.checks),
                                chain=runtime.deps))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://status", timeout=30)
    try:
        yield Status(store, runtime, client, settings)
    finally:
        runtime.stop()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        await client.aclose()
        await channel.close()
        await store.close()


@pytest.fixture
async def status(chain: TestChain, tmp_path: Path) -> AsyncIterator[Status]:
    async with running_status(chain, tmp_path) as running:
        yield running


def send_tx(chain: TestChain, tx: dict, sender_key: str, gas: int | None = None) -> str:
    """What a wallet does with the job's `mint.tx` (eth_sendTransaction), from `sender_key`'s account."""
    sender = Account.from_key(sender_key)
    full = {"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16), "from": sender.address,
            "nonce": chain.w3.eth.get_transaction_count(sender.address, "pending"), "chainId": chain.chain_id,
            "gas": gas or chain.w3.eth.estimate_gas({"to": tx["to"], "data": tx["data"], "from": sender.address}),
            "gasPrice": chain.w3.eth.gas_price}
    return chain.w3.eth.send_raw_transaction(sender.sign_transaction(full).raw_transaction).to_0x_hex()


async def test_pinned_job_carries_a_ready_mint_and_a_reported_mint_makes_it_minted(chain, status) -> None:
    wallet = chain.address_of(chain.collector_keys[0])
    job_id = await status.pinned_job(wallet)
    job = await status.job(job_id)
    mint = job["mint"]
    assert mint["chain_id"] == chain.chain_id and mint["contract"] == chain.address
    assert mint["voucher"]["to"] == wallet and mint["voucher"]["token_uri"] == job["token_uri"]
    assert mint["voucher"]["job_id"] == "0x" + job_id_to_bytes32(job_id).hex()
    assert mint["voucher"]["deadline"] > time.time() + 1000
    assert mint["tx"]["to"] == chain.address and mint["tx"]["value"] == "0x0"
    assert (await status.job(job_id))["mint"] == mint  # stable between reads
    assert job["token_id"] is None and job["minted_at"] is None
    info = (await status.client.get("/v1/chain")).json()
    assert info["chain_id"] == chain.chain_id and info["contract"] == chain.address
    assert any(e.get("name") == "mint" for e in info["abi"])

    # Sent from another funded account (a friend paying the gas): the token still goes to the job's wallet.
    tx_hash = send_tx(chain, mint["tx"], chain.collector_keys[1])
    reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["state"] == "minted" and report["stage"] == "minted" and report["tx_hash"] == tx_hash
    job = await status.job(job_id)
    assert job["stage"] == "minted" and job["mint"] is None and job["progress"] == 100
    assert job["token_id"] == report["token_id"] and job["tx_hash"] == tx_hash and job["block"] == report["block"]
    assert job["minted_at"].endswith("Z")
    assert chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
    assert chain.contract.functions.tokenURI(job["token_id"]).call() == job["token_uri"]
    # Reporting again is harmless; the gRPC face carries the same.
    again = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})
    assert again.status_code == 200 and again.json()["token_id"] == job["token_id"]
    proto = await JobView(status.runtime.deps).proto(await status.store.get(job_id))
    assert proto.stage == jobs_pb2.STAGE_MINTED and proto.token_id == str(job["token_id"])
    assert proto.tx_hash == tx_hash and proto.block == job["block"] and proto.minted_at.seconds > 0


async def test_every_wrong_report_gets_an_answer_naming_what_did_not_match(chain, status) -> None:
    wallet = chain.address_of(chain.collector_keys[0])
    job_id = await status.pinned_job(wallet)
    other_id = await status.pinned_job(wallet)
    post = status.client.post

    async def answer(tx_hash: str, job: str = job_id) -> tuple[int, dict]:
        reply = await post(f"/v1/jobs/{job}/mint", json={"tx_hash": tx_hash})
        return reply.status_code, reply.json()

    code, body = await answer("0x1234")
    assert code == 400 and body["error"]["field"] == "tx_hash"
    code, body = await answer("0x" + "ab" * 32)
    assert code == 404 and "another network" in body["error"]["message"]
    # A foreign transaction: a plain payment, not to the collection.
    payer = Account.from_key(chain.collector_keys[2])
    pay = chain.w3.eth.send_transaction({"from": payer.address, "to": wallet, "value": 1}).to_0x_hex()
    chain.w3.eth.wait_for_transaction_receipt(pay)
    code, body = await answer(pay)
    assert code == 422 and body["error"]["field"] == "contract"
    # Another job's mint reported for this job.
    other_tx = send_tx(chain, (await status.job(other_id))["mint"]["tx"], chain.collector_keys[0])
    chain.w3.eth.wait_for_transaction_receipt(other_tx)
    code, body = await answer(other_tx)
    assert code == 422 and body["error"]["field"] == "job_id" and other_id in body["error"]["message"]
    # A reverted transaction: the other job's voucher sent a second time.
    other_mint = (await status.job(other_id))
    assert other_mint["stage"] in ("pinned", "minted")
    replay = send_tx(chain, {"to": chain.address, "data": chain.w3.eth.get_transaction(other_tx)["input"].to_0x_hex(),
                             "value": "0x0"}, chain.collector_keys[0], gas=400_000)
    assert chain.w3.eth.wait_for_transaction_receipt(replay)["status"] == 0
    code, body = await answer(replay)
    assert code == 422 and body["error"]["code"] == "reverted"
    assert "already minted (token id" in body["error"]["message"]
    # Body without tx_hash or relay.
    reply = await post(f"/v1/jobs/{job_id}/mint", json={})
    assert reply.status_code == 400
    reply = await post(f"/v1/jobs/{'0' * 32}/mint", json={"tx_hash": other_tx})
    assert reply.status_code == 404 and reply.json()["error"]["field"] == "job_id"
    assert (await status.job(job_id))["stage"] == "pinned"  # none of that minted anything


async def test_pending_tx_is_accepted_then_watched_to_minted(chain, status) -> None:
    wallet = chain.address_of(chain.collector_keys[3])
    job_id = await status.pinned_job(wallet)
    chain.rpc("evm_setAutomine", False)
    try:
        tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[3], gas=400_000)
        reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})
        assert reply.status_code == 202 and reply.json()["state"] == "pending" and reply.json()["stage"] == "pinned"
    finally:
        chain.rpc("evm_setAutomine", True)
    chain.mine(1)
    job = await status.wait_stage(job_id, "minted")
    assert job["tx_hash"] == tx_hash


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
        async with second.store.db.execute("SELECT COUNT(*) FROM mints") as cur:
            assert (await cur.fetchone())[0] == 2
        tokens = {j["token_id"] for j in minted}
        assert len(tokens) == 2


async def test_a_reorg_before_confirmations_leaves_no_minted_job(chain, tmp_path) -> None:
    wallet = chain.address_of(chain.collector_keys[6])
    async with running_status(chain, tmp_path, chain_confirmations=2) as status:
        job_id = await status.pinned_job(wallet)
        snapshot = chain.snapshot()
        tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[6])
        reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})
        assert reply.status_code == 202 and reply.json()["state"] == "confirming"
        assert reply.json()["required_confirmations"] == 2
        assert chain.revert(snapshot)
        chain.mine(4)  # the chain goes on past the depth, without the mint
        await asyncio.sleep(1.5)  # several watcher rounds
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
        job_id = await status.pinned_job(wallet)
        snapshot = chain.snapshot()
        tx_hash = send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[6])
        reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})
        assert reply.status_code == 200 and (await status.job(job_id))["stage"] == "minted"
        assert chain.revert(snapshot)
        chain.mine(2)
        job = await status.wait_stage(job_id, "pinned")
        assert job["token_id"] is None and job["mint"] is not None


async def test_twenty_relayed_mints_at_once_all_land_once_with_nonces_in_order(chain, tmp_path) -> None:
    wallets = [Account.create().address for _ in range(20)]
    async with running_status(chain, tmp_path, relay_per_wallet_daily=1) as status:
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


def test_signer_key_is_never_in_a_response(chain) -> None:
    """Responses of every chain route, read as text, hold neither key."""

    async def run() -> list[str]:
        texts = []
        async with running_status(chain, Path(tempfile.mkdtemp())) as status:
            job_id = await status.pinned_job(chain.address_of(chain.collector_keys[0]))
            for reply in (await status.client.get(f"/v1/jobs/{job_id}"), await status.client.get("/v1/chain"),
                          await status.client.get("/healthz"), await status.client.get("/metrics"),
                          await status.client.get("/openapi.json")):
                texts.append(reply.text)
        return texts

    texts = asyncio.run(run())
    for key in (chain.signer_key, chain.relayer_key):
        assert not any(key.removeprefix("0x").lower() in t.lower() for t in texts)
    assert json.loads(texts[1])["contract"] == chain.address


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
            replacement = chain.w3.eth.get_transaction(current.tx_hash)
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


async def test_reverts_and_mismatches_each_get_their_sentence(chain, status) -> None:
    """Vouchers the service would never sign this way, made here with its key to reach each check."""
    wallet = chain.address_of(chain.collector_keys[0])
    job_id = await status.pinned_job(wallet)
    uri = (await status.job(job_id))["token_uri"]
    sender = chain.collector_keys[1]

    async def report(tx_hash: str) -> dict:
        reply = await status.client.post(f"/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash})
        assert reply.status_code == 422, reply.text
        return reply.json()["error"]

    expired = chain.voucher(job_id, wallet, uri, deadline=int(time.time()) - 60)
    receipt = chain.send(chain.contract.functions.mint(*expired.mint_args(chain.sign(expired))), sender)
    assert receipt["status"] == 0
    error = await report(receipt["transactionHash"].to_0x_hex())
    assert error["code"] == "reverted" and "read the job again" in error["message"]

    foreign = chain.voucher(job_id, wallet, uri)
    stranger_signed = chain.send(chain.contract.functions.mint(
        *foreign.mint_args(chain.sign(foreign, key=chain.collector_keys[2]))), sender)
    error = await report(stranger_signed["transactionHash"].to_0x_hex())
    assert "wrong network" in error["message"]

    elsewhere = chain.voucher(job_id, chain.address_of(chain.collector_keys[2]), uri)
    snapshot = chain.snapshot()
    receipt = chain.mint(elsewhere, chain.sign(elsewhere), sender)
    error = await report(receipt["transactionHash"].to_0x_hex())
    assert error["field"] == "wallet" and wallet in error["message"]
    assert chain.revert(snapshot)

    other_uri = chain.voucher(job_id, wallet, uri + "-other")
    snapshot = chain.snapshot()
    receipt = chain.mint(other_uri, chain.sign(other_uri), sender)
    error = await report(receipt["transactionHash"].to_0x_hex())
    assert error["field"] == "token_uri"
    assert chain.revert(snapshot)
    chain.mine(1)
    await asyncio.sleep(1)  # the watcher saw those mints come and go
    assert (await status.job(job_id))["stage"] == "pinned"


async def test_grpc_watch_until_minted_streams_the_mint(chain, status) -> None:
    wallet = chain.address_of(chain.collector_keys[0])
    job_id = await status.pinned_job(wallet)
    server = GrpcServer("127.0.0.1", 0, ["mintpipe.v1.StatusService"])
    status_pb2_grpc.add_StatusServiceServicer_to_server(
        StatusService(status.store, status.runtime.deps.bus, JobView(status.runtime.deps)), server.server)
    await server.start({})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = status_pb2_grpc.StatusServiceStub(channel)
            got = await stub.GetJob(status_pb2.GetJobRequest(job_id=job_id), timeout=10)
            assert got.mint.voucher.to == wallet and got.mint.tx.to == chain.address
            assert got.mint.signature == (await status.job(job_id))["mint"]["signature"]
            stream = stub.WatchJob(status_pb2.WatchJobRequest(job_id=job_id, until_minted=True), timeout=30)
            first = await stream.read()
            assert first.stage == jobs_pb2.STAGE_PINNED
            send_tx(chain, (await status.job(job_id))["mint"]["tx"], chain.collector_keys[0])
            stages = [first.stage]
            while (job := await stream.read()) is not grpc.aio.EOF:
                stages.append(job.stage)
            assert stages[-1] == jobs_pb2.STAGE_MINTED
            last = await stub.GetJob(status_pb2.GetJobRequest(job_id=job_id), timeout=10)
            assert last.token_id and last.tx_hash and last.block and not last.HasField("mint")
    finally:
        await server.stop(grace=1)


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
