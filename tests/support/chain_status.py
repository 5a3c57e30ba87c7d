"""The chain stage and the status service in process, as `python -m minter` and `python -m status` wire them:
a real minter (its own store, chain, gRPC server on loopback, relay and watch consumers on the test's broker
prefix) and status's store, events consumer and HTTP app (over httpx's ASGI transport) talking to it over gRPC.
For tests and bench/chain.py.

    async with running_status(chain, tmp_path, amqp=(rabbit_url, broker_prefix), chain_confirmations=2) as status:
        job_id = await status.pinned_job(wallet)        # a job at `pinned`, as the events consumer puts it there
        await status.job(job_id) / await status.wait_stage(job_id, "minted")
        status.client (httpx.AsyncClient on the app), status.minter (store, watcher, relayer, duty)
        status.claim(job_id)                            # the claim token the 202 would have answered
    send_tx(chain, job["mint"]["tx"], key)              # what a wallet does with the job's ready transaction
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from eth_account import Account

from minter.assembly import assemble
from minter.chain import Chain
from minter.relayer import Relayer
from minter.runtime import WatchDuty
from minter.settings import MinterSettings
from minter.store import MinterStore
from minter.watcher import ChainWatcher
from mintpipe.db.core import database_for
from mintpipe.messaging.broker import Broker, Topology
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.rpc.server import GrpcServer
from mintpipe.v1 import broker_pb2, gateway_pb2_grpc, jobs_pb2
from status.app import BridgeDeps, create_app
from status.clients import MinterClient
from status.jobs.bus import JobBus
from status.jobs.claims import ClaimTokens
from status.jobs.store import JobStore
from status.minting import ChainDeps, chain_deps
from status.ops.actions import AdminDeps
from status.ops.views import OpsConfig
from status.settings import StatusSettings
from status.workers.consumer import events_consumer
from tests.support.chain import TestChain

STATUS_SIDE = {"relay_ip_rate_per_minute", "relay_ip_burst", "report_ip_rate_per_minute", "report_ip_burst",
               "relay_wait_seconds", "claim_secret", "database_url"}


@dataclass
class Minter:
    """One minter replica in process."""

    settings: MinterSettings
    store: MinterStore
    chain: Chain
    watcher: ChainWatcher
    relayer: Relayer | None
    duty: WatchDuty
    broker: Broker
    server: GrpcServer
    consumer: Any = None
    stopped: bool = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    async def health(self) -> str:
        """The replica's gRPC health, as `mintpipe health` reads it (SERVING / NOT_SERVING)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        async with grpc.aio.insecure_channel(self.target) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def stop_watching(self) -> None:
        """The watcher stops (a replica gone, or the chain's side switched off for a test)."""
        await self.duty.stop()

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        await self.server.begin_shutdown()
        await self.duty.stop()
        if self.consumer is not None:
            await self.consumer.stop(5)
        await self.server.stop(grace=1)
        await self.broker.close()
        await self.chain.close()
        await self.store.close()


@asynccontextmanager
async def running_minter(chain: TestChain, data_dir: Path, amqp: tuple[str, str], **overrides: object
                         ) -> AsyncIterator[Minter]:
    values: dict[str, object] = {
        "data_dir": data_dir, "amqp_url": amqp[0], "broker_prefix": amqp[1], "chain_rpc_url": chain.url,
        "chain_public_rpc_url": chain.url, "chain_contract": chain.address, "chain_signer_key": chain.signer_key,
        "chain_relayer_key": chain.relayer_key, "chain_confirmations": 0, "chain_poll_seconds": 0.2,
        "chain_finality_depth": 64, "grpc_port": 0, **overrides}
    settings = MinterSettings(**values)
    store = MinterStore(database_for(settings.database_url, settings.database))
    await store.open()
    the_chain = Chain(settings)
    await the_chain.connect()
    broker = Broker(settings.amqp_url, Topology(settings.broker_prefix), "minter")
    await broker.connect(attempts=3)
    parts = assemble(settings, the_chain, store, broker)
    watcher, relayer, consumer, duty, server = parts.watcher, parts.relayer, parts.sender, parts.duty, parts.server
    duty.name = f"minter@{data_dir.name}"
    minter = Minter(settings, store, the_chain, watcher, relayer, duty, broker, server, consumer)
    if relayer is not None and consumer is not None:
        await relayer.refresh_balance()
        await consumer.start()
    await duty.start()
    checks = parts.checks
    await server.start(checks, interval=0.2)
    try:
        yield minter
    finally:
        await minter.stop()


@dataclass
class Status:
    store: JobStore
    client: httpx.AsyncClient
    settings: StatusSettings
    minter: Minter
    claims: ClaimTokens
    deps: ChainDeps
    extra: dict[str, Any] = field(default_factory=dict)

    def claim(self, job_id: str) -> str:
        return self.claims.token(job_id)

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

    async def relay(self, job_id: str, **body: Any) -> httpx.Response:
        return await self.client.post(f"/v1/jobs/{job_id}/mint",
                                      json={"relay": True, "claim_token": self.claim(job_id), **body})

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
async def running_status(chain: TestChain, data_dir: Path, *, amqp: tuple[str, str],
                         operators: OperatorsAccess | None = None, minter: Minter | None = None,
                         **overrides: object) -> AsyncIterator[Status]:
    """A minter (or the one given) and the status service's store, events consumer and HTTP app beside it; with
    `operators` its operators' routes and dashboard API too. Chain and relay settings go to the minter, the
    bridge's own (per-IP limits, the relay wait, the database) to status; `database_url` to both."""
    status_values = {k: v for k, v in overrides.items() if k in STATUS_SIDE}
    minter_values = {k: v for k, v in overrides.items() if k not in STATUS_SIDE or k == "database_url"}
    async with AsyncExitStack() as stack:
        if minter is None:
            minter = await stack.enter_async_context(running_minter(chain, data_dir, amqp, **minter_values))
        status_values.setdefault("relay_ip_rate_per_minute", 10_000)  # tests make many requests from one address
        status_values.setdefault("relay_ip_burst", 10_000)
        status_values.setdefault("report_ip_rate_per_minute", 10_000)
        status_values.setdefault("report_ip_burst", 10_000)
        settings = StatusSettings(data_dir=data_dir, minter_target=minter.target, **status_values)
        store = JobStore(database_for(settings.database_url, settings.database))
        await store.open()
        stack.push_async_callback(store.close)
        bus = JobBus()
        broker = Broker(amqp[0], Topology(amqp[1]), "status")
        await broker.connect(attempts=3)
        stack.push_async_callback(broker.close)
        consumer = events_consumer(broker, store, bus, prefetch=16)
        await consumer.start()
        stack.push_async_callback(consumer.stop, 2)
        claims = await ClaimTokens.load(store.db)
        client_ = MinterClient(minter.target)
        stack.push_async_callback(client_.close)
        deps = chain_deps(settings, store, bus, broker, claims, client_)
        for limiter in (deps.relay_limiter, deps.report_limiter):
            if hasattr(limiter, "close"):
                stack.push_async_callback(limiter.close)
        channel = grpc.aio.insecure_channel("127.0.0.1:9")  # the gateway: never called here
        stack.push_async_callback(channel.close)
        app = create_app(BridgeDeps(store=store, bus=bus, gateway=gateway_pb2_grpc.GatewayServiceStub(channel),
                                    ipfs=LocalIpfsStore(data_dir / "ipfs"), checks={"minter": client_.healthy},
                                    chain=deps, claims=claims,
                                    admin=operators.admin_deps(store, bus, data_dir) if operators else None,
                                    ops=operators.ops_config() if operators else None))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://status", timeout=30)
        stack.push_async_callback(http.aclose)
        yield Status(store, http, settings, minter, claims, deps)


def send_tx(chain: TestChain, tx: dict, sender_key: str, gas: int | None = None) -> str:
    """What a wallet does with the job's `mint.tx` (eth_sendTransaction), from `sender_key`'s account."""
    sender = Account.from_key(sender_key)
    full = {"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16), "from": sender.address,
            "nonce": chain.w3.eth.get_transaction_count(sender.address, "pending"), "chainId": chain.chain_id,
            "gas": gas or chain.w3.eth.estimate_gas({"to": tx["to"], "data": tx["data"], "from": sender.address}),
            "gasPrice": chain.w3.eth.gas_price}
    return chain.w3.eth.send_raw_transaction(sender.sign_transaction(full).raw_transaction).to_0x_hex()
