"""The bridge's operator routes in process, for tests: the HTTP app over httpx's ASGI transport with a real job
store and the real broker (no gateway: these routes never call it).

    async with operator_bridge(broker, store, token, ops=OpsConfig(...)) as client: ...
    async with store_and_bridge(broker, tmp_path, token, db_url=db_url) as (client, store): ...

`db_url` (the `db_url` fixture of tests/support/postgres.py) runs the same on SQLite (None) or PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import httpx

from mintpipe.db.core import database_for
from mintpipe.messaging.broker import Broker
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.v1 import broker_pb2, gateway_pb2_grpc, jobs_pb2
from status.app import BridgeDeps, create_app
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from status.ops.actions import AdminDeps
from status.ops.views import OpsConfig, pin_ledger_of

WALLET = "0x000000000000000000000000000000000000dEaD"


@asynccontextmanager
async def operator_bridge(broker: Broker, store: JobStore, token: str | None,
                          ops: OpsConfig | None = None, data_dir: Path | None = None
                          ) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the bridge's app; `token` None is a bridge started without MINTPIPE_ADMIN_TOKEN. Artifacts, the
    IPFS store and (on SQLite) the pin ledger live in `data_dir` (default: beside the store's file)."""
    data_dir = data_dir or store.path.parent
    if ops is not None and ops.pin_ledger is None:
        ops = dataclasses.replace(ops, pin_ledger=pin_ledger_of(store, data_dir))
    bus = JobBus()
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # the gateway: never called by these routes
    app = create_app(BridgeDeps(
        store=store, bus=bus, gateway=gateway_pb2_grpc.GatewayServiceStub(channel),
        ipfs=LocalIpfsStore(data_dir / "ipfs"), checks={},
        admin=AdminDeps(broker, store, bus, token, ArtifactStore(data_dir / "artifacts")), ops=ops))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            yield client
    finally:
        await channel.close()


@asynccontextmanager
async def store_and_bridge(broker: Broker, data_dir: Path, token: str | None, ops: OpsConfig | None = None,
                           db_url: str | None = None) -> AsyncIterator[tuple[httpx.AsyncClient, JobStore]]:
    """A fresh job store (in `data_dir`, or the PostgreSQL database `db_url`) and a client of the bridge on it."""
    store = JobStore(database_for(db_url, data_dir / "jobs.sqlite3"))
    await store.open()
    try:
        async with operator_bridge(broker, store, token, ops, data_dir) as client:
            yield client, store
    finally:
        await store.close()


async def new_job(store: JobStore, wallet: str = WALLET, key: str | None = None, *, failed: str | None = None,
                  published: bool = True) -> str:
    """A job as the gateway leaves it (reserved, published); with `failed`, failed with that reason."""
    job, _ = await store.reserve(key or f"k-{uuid.uuid4()}", uuid.uuid4().hex * 2, wallet, "gen1",
                                 json.dumps({"seed": 3}))
    if published:
        await store.mark_published(job.job_id)
    if failed is not None:
        await store.apply(broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_FAILED, error=failed))
    return job.job_id
