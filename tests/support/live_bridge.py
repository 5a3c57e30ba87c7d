"""The HTTP bridge served by uvicorn on loopback, wired to real parts: a real gateway and status gRPC server,
the real RabbitMQ (the test session's vhost, a queue prefix of its own) and a SQLite job store.

Everything runs on an event loop in a background thread, so a synchronous client (schemathesis, requests)
and async tests alike reach it over real HTTP, and none of its connections are tied to the tests' loop.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import uvicorn

from gateway.service import GatewayService
from mintpipe.limits.memory import KeyedRateLimiter
from mintpipe.messaging.broker import Broker, Topology
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.rpc.server import GrpcServer
from mintpipe.runtime.disk import DiskGuard
from mintpipe.v1 import gateway_pb2_grpc, renderer_pb2_grpc, status_pb2_grpc
from status.app import BridgeDeps, create_app
from status.clients import renderer_channel
from status.grpc_api import StatusService
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from status.ops.actions import AdminDeps
from status.ops.views import OpsConfig
from tests.conftest import free_port
from tests.support.broker import delete_topology


@contextmanager
def live_bridge(rabbit_url: str, data_dir: Path, *, admin_token: str | None = None,
                ip_limiter: KeyedRateLimiter | None = None, wallet_limiter: KeyedRateLimiter | None = None,
                trust_forwarded_for: bool = False, max_body_bytes: int = 64 * 1024,
                disk: DiskGuard | None = None, gateway_options: dict | None = None,
                renderer_target: str | None = None, preview_limiter: KeyedRateLimiter | None = None,
                web_dir: Path | None = None, readonly_token: str | None = None) -> Iterator[str]:
    """Yields the bridge's base URL; stops every part and removes its queues afterwards. `gateway_options` go to
    GatewayService (ledger, monthly_pins). With `renderer_target` (renderer gRPC servers, e.g.
    tests.support.renderers) the bridge serves previews from them."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None
    failure: list[BaseException] = []
    port = free_port()

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        store = JobStore(data_dir / "jobs.sqlite3")
        await store.open()
        bus = JobBus()
        broker = Broker(rabbit_url, Topology(f"live{uuid.uuid4().hex[:8]}"), "bridge-test")
        await broker.connect(attempts=3)
        status_server = GrpcServer("127.0.0.1", 0, ["mintpipe.v1.StatusService"])
        status_pb2_grpc.add_StatusServiceServicer_to_server(StatusService(store, bus), status_server.server)
        await status_server.start({})
        status_channel = grpc.aio.insecure_channel(f"127.0.0.1:{status_server.port}")
        gateway_server = GrpcServer("127.0.0.1", 0, ["mintpipe.v1.GatewayService"])
        gateway_service = GatewayService(broker, status_pb2_grpc.StatusServiceStub(status_channel),
                                         wallet_limiter=wallet_limiter, **(gateway_options or {}))
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server(gateway_service, gateway_server.server)
        await gateway_server.start({"broker": lambda: broker.connected})
        gateway_channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway_server.port}")
        renderer_chan = renderer_channel(renderer_target) if renderer_target else None
        deps = BridgeDeps(store=store, bus=bus, gateway=gateway_pb2_grpc.GatewayServiceStub(gateway_channel),
                          ipfs=LocalIpfsStore(data_dir / "ipfs"),
                          checks={"broker": lambda: broker.connected, "store": store.ping,
                                  **({"disk": disk.healthy} if disk else {})}, disk=disk,
                          admin=AdminDeps(broker, store, bus, admin_token, ArtifactStore(data_dir / "artifacts")),
                          ip_limiter=ip_limiter,
                          trust_forwarded_for=trust_forwarded_for, max_body_bytes=max_body_bytes,
                          renderer=renderer_pb2_grpc.RendererServiceStub(renderer_chan) if renderer_chan else None,
                          preview_limiter=preview_limiter, web_dir=web_dir,
                          ops=OpsConfig(readonly_token=readonly_token, pin_ledger=data_dir / "pins.sqlite3"))
        server = uvicorn.Server(uvicorn.Config(create_app(deps), host="127.0.0.1", port=port, log_config=None,
                                               access_log=False, lifespan="off"))
        http = asyncio.create_task(server.serve())
        while not server.started:
            if http.done():
                http.result()
            await asyncio.sleep(0.02)
        ready.set()
        try:
            await stop.wait()
        finally:
            server.should_exit = True
            await http
            await gateway_channel.close()
            await gateway_service.close()  # its "published" marks, as the gateway's drain sends them
            if renderer_chan is not None:
                await renderer_chan.close()
            await status_channel.close()
            for grpc_server in (gateway_server, status_server):
                await grpc_server.begin_shutdown()
                await grpc_server.stop(0)
            await delete_topology(broker)
            await broker.close()
            await store.close()

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="live-bridge", daemon=True)
    thread.start()
    ready.wait(60)
    if failure:
        raise RuntimeError("the live bridge did not start") from failure[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()

