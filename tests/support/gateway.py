"""A real gateway and a real status service on loopback gRPC, wired as in production, for the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from gateway.service import GatewayService
from mintpipe.messaging.broker import Broker
from mintpipe.rpc.server import GrpcServer
from mintpipe.v1 import gateway_pb2_grpc, status_pb2_grpc
from status.grpc_api import StatusService
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from tests.conftest import free_port


@dataclass
class GatewaySide:
    gateway: gateway_pb2_grpc.GatewayServiceStub
    status: status_pb2_grpc.StatusServiceStub
    store: JobStore
    service: GatewayService  # its close() sends the "published" marks still waiting


@asynccontextmanager
async def running_gateway(broker: Broker, data_dir: Path, **service_options: Any) -> AsyncIterator[GatewaySide]:
    """`service_options` go to GatewayService (ledger, monthly_pins, wallet_limiter)."""
    store = JobStore(data_dir / "jobs.sqlite3")
    await store.open()
    status_server = GrpcServer("127.0.0.1", free_port(), ["mintpipe.v1.StatusService"])
    status_pb2_grpc.add_StatusServiceServicer_to_server(StatusService(store, JobBus()), status_server.server)
    await status_server.start({})
    status_channel = grpc.aio.insecure_channel(f"127.0.0.1:{status_server.port}")
    gateway_server = GrpcServer("127.0.0.1", free_port(), ["mintpipe.v1.GatewayService"])
    service = GatewayService(broker, status_pb2_grpc.StatusServiceStub(status_channel), **service_options)
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(service, gateway_server.server)
    await gateway_server.start({"broker": lambda: broker.connected})
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway_server.port}")
    try:
        yield GatewaySide(gateway_pb2_grpc.GatewayServiceStub(channel),
                          status_pb2_grpc.StatusServiceStub(status_channel), store, service)
    finally:
        await channel.close()
        await service.close()
        await status_channel.close()
        await gateway_server.stop(0)
        await status_server.stop(0)
        await store.close()


class _SlowReservations:
    """The real job store whose reservations take `delay` seconds (a busy database), for drain tests."""

    def __init__(self, store: JobStore, delay: float) -> None:
        self._store, self._delay = store, delay

    async def reserve(self, *args: Any, **kwargs: Any) -> Any:
        import asyncio

        await asyncio.sleep(self._delay)
        return await self._store.reserve(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@asynccontextmanager
async def running_status(data_dir: Path, reserve_delay: float = 0.0) -> AsyncIterator[int]:
    """A real status gRPC server on loopback (its job store in `data_dir`); yields its port."""
    store = JobStore(data_dir / "jobs.sqlite3")
    await store.open()
    served = _SlowReservations(store, reserve_delay) if reserve_delay else store
    server = GrpcServer("127.0.0.1", free_port(), ["mintpipe.v1.StatusService"])
    status_pb2_grpc.add_StatusServiceServicer_to_server(StatusService(served, JobBus()), server.server)
    await server.start({})
    try:
        yield server.port
    finally:
        await server.stop(0)
        await store.close()
