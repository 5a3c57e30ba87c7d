"""Real renderer gRPC servers (RendererService beside health, as `python -m renderer` serves them) on loopback
ports, on an event loop of their own in a background thread, so the bridge and the tests reach them over gRPC."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mintpipe.rpc.server import GrpcServer
from mintpipe.v1 import renderer_pb2_grpc
from renderer.preview import PreviewService


@dataclass
class Replica:
    port: int
    service: PreviewService
    server: GrpcServer
    loop: asyncio.AbstractEventLoop

    def stop(self) -> None:
        """Stops this replica's server now (as if it died)."""
        async def down() -> None:
            await self.server.begin_shutdown()
            await self.server.stop(0)

        asyncio.run_coroutine_threadsafe(down(), self.loop).result(10)


@contextmanager
def preview_replicas(count: int, **service_options: float) -> Iterator[list[Replica]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="renderers", daemon=True)
    thread.start()

    async def start() -> list[Replica]:
        replicas = []
        for i in range(count):
            service = PreviewService(**service_options)
            service.replica = f"replica-{i}"
            server = GrpcServer("127.0.0.1", 0, ["mintpipe.v1.RendererService"])
            renderer_pb2_grpc.add_RendererServiceServicer_to_server(service, server.server)
            await server.start({})
            replicas.append(Replica(server.port, service, server, loop))
        return replicas

    replicas = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield replicas
    finally:
        async def stop() -> None:
            for r in replicas:
                await r.server.begin_shutdown()
                await r.server.stop(0)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def target(replicas: list[Replica]) -> str:
    """One gRPC target naming every replica (what the launcher gives the bridge)."""
    return "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in replicas)
