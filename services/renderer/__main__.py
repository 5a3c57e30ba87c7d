"""python -m renderer: one replica; run N of them as competing consumers."""

from __future__ import annotations

import asyncio

from mintpipe.artifacts import ArtifactStore
from mintpipe.config import load_settings
from mintpipe.v1 import broker_pb2
from mintpipe.worker import run_worker
from renderer.consumer import RenderHandler, check_render_job
from renderer.settings import RendererSettings


async def main() -> None:
    settings = load_settings(RendererSettings)
    artifacts = ArtifactStore(settings.data_dir / "artifacts")
    await run_worker("renderer", settings, lambda topo: topo.render_queue, broker_pb2.RenderJob,
                     lambda broker: RenderHandler(broker, artifacts), check_render_job,
                     {"artifacts": artifacts.root.is_dir})


if __name__ == "__main__":
    asyncio.run(main())
