"""python -m renderer: one replica; run N of them as competing consumers."""

from __future__ import annotations

import asyncio

from mintpipe.bootstrap import open_stores_or_exit
from mintpipe.config import load_settings
from mintpipe.messaging.worker import run_worker
from mintpipe.v1 import renderer_pb2, renderer_pb2_grpc
from renderer.consumer import render_consumer
from renderer.preview import PreviewService
from renderer.settings import RendererSettings


async def main() -> None:
    settings = load_settings(RendererSettings)
    artifacts = open_stores_or_exit(settings)

    def build(broker, prefetch):
        return render_consumer(broker, artifacts, prefetch, deadline=settings.deadline_seconds,
                               threads=settings.render_threads)

    # The preview service shares the replica's gRPC server (its health port): one port a replica.
    previews = PreviewService(settings.preview_rate, settings.preview_burst, settings.preview_cache_mb << 20)

    def add_previews(server) -> None:
        renderer_pb2_grpc.add_RendererServiceServicer_to_server(previews, server)

    service = renderer_pb2.DESCRIPTOR.services_by_name["RendererService"].full_name
    checks = {"artifacts": lambda: asyncio.to_thread(artifacts.healthy)}
    await run_worker("renderer", settings, build, checks, [(service, add_previews)])


if __name__ == "__main__":
    asyncio.run(main())
