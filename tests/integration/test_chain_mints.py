"""Status on anvil: the ready mint object (HTTP and gRPC), reported mints and every kind of wrong report."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from eth_account import Account

from mintpipe.chain import job_id_to_bytes32
from mintpipe.rpc.server import GrpcServer
from mintpipe.v1 import jobs_pb2, status_pb2, status_pb2_grpc
from status.grpc_api import StatusService
from status.jobs.view import JobView
from tests.support.chain import TestChain
from tests.support.chain_status import Status, running_status, send_tx

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(120)]


@pytest.fixture
async def status(chain: TestChain, tmp_path: Path, db_url: str | None, amqp) -> AsyncIterator[Status]:
    """The chain side on both engines (overrides the integration conftest's SQLite-only `status`)."""
    async with running_status(chain, tmp_path, amqp=amqp, database_url=db_url) as running:
        yield running


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
    proto = await JobView(status.deps).proto(await status.store.get(job_id))
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
        StatusService(status.store, status.deps.bus, JobView(status.deps)), server.server)
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


async def test_signer_key_is_never_in_a_response(chain, amqp) -> None:
    """Responses of every chain route, read as text, hold neither key."""
    texts = []
    async with running_status(chain, Path(tempfile.mkdtemp()), amqp=amqp) as status:
        job_id = await status.pinned_job(chain.address_of(chain.collector_keys[0]))
        for reply in (await status.client.get(f"/v1/jobs/{job_id}"), await status.client.get("/v1/chain"),
                      await status.client.get("/healthz"), await status.client.get("/metrics"),
                      await status.client.get("/openapi.json")):
            texts.append(reply.text)
    for key in (chain.signer_key, chain.relayer_key):
        assert not any(key.removeprefix("0x").lower() in t.lower() for t in texts)
    assert json.loads(texts[1])["contract"] == chain.address
