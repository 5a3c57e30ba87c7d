"""python -m renderer: one replica; run N of them as competing consumers."""

from __future__ import annotations

import asyncio

from mintpipe.artifacts import ArtifactStore
from mintpipe.config import load_settings
from mintpipe.worker import run_worker
from renderer.consumer import render_consumer
from renderer.settings import RendererSettings


async def main() -> None:
    settings = load_settings(RendererSettings)
    artifacts = ArtifactStore(settings.data_dir / "artifacts")

    def build(broker, prefetch):
        return render_consumer(broker, artifacts, prefetch, deadline=settings.deadline_seconds,
                               threads=settings.render_threads)

    await run_worker("renderer", settings, build, {"artifacts": artifacts.root.is_dir})


if __name__ == "__main__":
    asyncio.run(main())
