"""Status replicas in one process for tests and benches: each with its own job store pool, bus, change feed
(status.replicas.feed), gRPC server and HTTP bridge served by uvicorn on loopback, sharing nothing but one PostgreSQL
database (the job store's and the feed's) and no folder. What a real replica adds (the events consumer,
the broker) is not needed to show what watchers on each bridge and each gRPC server see."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import uvicorn
from httpx_sse import aconnect_sse

from mintpipe.db.core import PostgresDatabase
from mintpipe.limits.memory import RateLimiter
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.rpc.server import GrpcServer
from mintpipe.v1 import jobs_pb2, status_pb2, status_pb2_grpc
from status.app import BridgeDeps, create_app
from status.grpc_api import StatusService
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from status.replicas.feed import PgChangeFeed


@dataclass
class Replica:
    name: str
    store: JobStore
    bus: JobBus
    feed: PgChangeFeed
    url: str
    grpc_target: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def status_replica(dsn: str, folder: Path, name: str, poll_seconds: float = 600.0,
                         ip_limiter: RateLimiter | None = None) -> AsyncIterator[Replica]:
    """A replica whose watchers poll only every `poll_seconds` (default: never within a test), so what they
    see live comes from the change feed."""
    store = JobStore(PostgresDatabase(dsn))
    await store.open()
    bus = JobBus(poll_seconds)
    feed = PgChangeFeed(dsn, bus, store.get, name)
    await feed.start()
    port = _free_port()
    grpc_server = GrpcServer("127.0.0.1", 0, ["mintpipe.v1.StatusService"])
    status_pb2_grpc.add_StatusServiceServicer_to_server(StatusService(store, bus), grpc_server.server)
    await grpc_server.start({})
    deps = BridgeDeps(store=store, bus=bus, gateway=None, ipfs=LocalIpfsStore(folder / "ipfs"),  # type: ignore[arg-type]
                      checks={"change_feed": lambda: feed.connected}, ip_limiter=ip_limiter)
    server = uvicorn.Server(uvicorn.Config(create_app(deps), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    http = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started and feed.connected:
                break
            if http.done():
                http.result()
            await asyncio.sleep(0.02)
        else:
            raise RuntimeError(f"replica {name} did not start (feed connected: {feed.connected})")
        yield Replica(name, store, bus, feed, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_server.port}")
    finally:
        server.should_exit = True
        await http
        await grpc_server.begin_shutdown()
        await grpc_server.stop(0)
        await feed.stop()
        await store.close()


@contextlib.asynccontextmanager
async def sse_watch(url: str, job_id: str) -> AsyncIterator[asyncio.Queue[dict]]:
    """The job's SSE stream on that bridge: each `job` event's document in a queue, as it arrives."""
    events: asyncio.Queue[dict] = asyncio.Queue()
    opened = asyncio.Event()

    async def read() -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=None)) as client, \
                aconnect_sse(client, "GET", f"{url}/v1/jobs/{job_id}/events") as source:
            opened.set()
            async for sse in source.aiter_sse():
                if sse.event == "job":
                    events.put_nowait(json.loads(sse.data))

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(opened.wait(), 10)
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await task


@contextlib.asynccontextmanager
async def grpc_watch(target: str, job_id: str) -> AsyncIterator[asyncio.Queue[jobs_pb2.Job]]:
    """The job's WatchJob stream on that replica's gRPC server: each Job in a queue, as it arrives."""
    jobs: asyncio.Queue[jobs_pb2.Job] = asyncio.Queue()
    channel = grpc.aio.insecure_channel(target)
    call = status_pb2_grpc.StatusServiceStub(channel).WatchJob(status_pb2.WatchJobRequest(job_id=job_id))

    async def read() -> None:
        async for job in call:
            jobs.put_nowait(job)

    task = asyncio.create_task(read())
    try:
        yield jobs
    finally:
        call.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await task
        await channel.close()
