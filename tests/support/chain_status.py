"""The status service's chain side in process, as `python -m status` wires it (real SQLite job store, real
chain node, the HTTP app over httpx's ASGI transport; no broker): for tests and bench/chain.py.

    async with running_status(chain, tmp_path, chain_confirmations=2) as status:
        job_id = await status.pinned_job(wallet)        # a job at `pinned`, as the events consumer puts it there
        await status.job(job_id) / await status.wait_stage(job_id, "minted")
        status.client (httpx.AsyncClient on the app), status.runtime (chain deps, watcher, relayer tasks)
    send_tx(chain, job["mint"]["tx"], key)              # what a wallet does with the job's ready transaction
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from eth_account import Account

from mintpipe.artifacts import ArtifactStore
from mintpipe.broker import Broker
from mintpipe.db import database_for
from mintpipe.ipfs_store import LocalIpfsStore
from mintpipe.v1 import broker_pb2, gateway_pb2_grpc, jobs_pb2
from status.admin import AdminDeps
from status.admin_api import OpsConfig
from status.bus import JobBus
from status.chain_runtime import ChainRuntime, start_chain
from status.http_api import BridgeDeps, create_app
from status.settings import StatusSettings
from status.store import JobStore
from tests.support.chain import TestChain


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


@dataclass
class OperatorsAccess:
    """The operators' side of the bridge: the broker its admin routes use and their two tokens."""

    broker: Broker
    token: str
    readonly_token: str | None = None

    def admin_deps(self, store: JobStore, bus: JobBus, data_dir: Path) -> AdminDeps:
        return AdminDeps(self.broker, store, bus, self.token, ArtifactStore(data_dir / "artifacts"))

    def ops_config(self) -> OpsConfig:
        return OpsConfig(readonly_token=self.readonly_token)


@asynccontextmanager
async def running_status(chain: TestChain, data_dir: Path, *, operators: OperatorsAccess | None = None,
                         **overrides: object) -> AsyncIterator[Status]:
    """The status service's store, chain side and HTTP app, as `python -m status` wires them (no broker), and
    with `operators` its operators' routes and dashboard API too."""
    values: dict[str, object] = {
        "data_dir": data_dir, "chain_rpc_url": chain.url, "chain_contract": chain.address,
        "chain_signer_key": chain.signer_key, "chain_relayer_key": chain.relayer_key, "chain_confirmations": 0,
        "chain_poll_seconds": 0.2, **overrides}
    settings = StatusSettings(**values)
    store = JobStore(database_for(settings.database_url, settings.database))  # database_url=<pg_dsn>: PostgreSQL
    await store.open()
    bus = JobBus()
    runtime = await start_chain(settings, store, bus)
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # the gateway: never called here
    app = create_app(BridgeDeps(store=store, bus=bus, gateway=gateway_pb2_grpc.GatewayServiceStub(channel),
                                ipfs=LocalIpfsStore(data_dir / "ipfs"), checks=dict(runtime.checks),
                                chain=runtime.deps,
                                admin=operators.admin_deps(store, bus, data_dir) if operators else None,
                                ops=operators.ops_config() if operators else None))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://status", timeout=30)
    try:
        yield Status(store, runtime, client, settings)
    finally:
        runtime.stop()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        await client.aclose()
        await channel.close()
        await store.close()


def send_tx(chain: TestChain, tx: dict, sender_key: str, gas: int | None = None) -> str:
    """What a wallet does with the job's `mint.tx` (eth_sendTransaction), from `sender_key`'s account."""
    sender = Account.from_key(sender_key)
    full = {"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16), "from": sender.address,
            "nonce": chain.w3.eth.get_transaction_count(sender.address, "pending"), "chainId": chain.chain_id,
            "gas": gas or chain.w3.eth.estimate_gas({"to": tx["to"], "data": tx["data"], "from": sender.address}),
            "gasPrice": chain.w3.eth.gas_price}
    return chain.w3.eth.send_raw_transaction(sender.sign_transaction(full).raw_transaction).to_0x_hex()
