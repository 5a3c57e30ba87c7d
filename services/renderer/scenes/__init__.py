"""Scene renderers: each turns complete settings into frames, one at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from renderer.scenes import gen1

# name → ((settings, threads=2) → frame(k) function); the registry of schemas lives in mintpipe.core.scenes.
FrameFunction = Callable[[int], np.ndarray]
SCENE_RENDERERS: dict[str, Callable[..., FrameFunction]] = {"gen1": gen1.prepare}


def frames(scene: str, settings: dict) -> Iterator[np.ndarray]:
    frame_at = SCENE_RENDERERS[scene](settings)
    for k in range(settings["frames"]):
        yield frame_at(k)
