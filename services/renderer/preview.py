"""RendererService.RenderPreview: one small still of a collector's settings for the mint page, drawn by the
scene code the jobs use, answered directly (never through the queue).

A preview is the frame the job's preview.png will show, drawn smaller (a scene's composition scales with its
size, so it is the same picture). At 256 px it takes ~25 ms here (scene set-up 5-9 ms, the frame 5 ms, PNG at
zlib level 1 13 ms; level 6 would double that for 18 % fewer bytes), so a replica can answer dozens a second
without holding up its job renders for long. Limits keep it so: previews are drawn one at a time per replica
(a thread of their own, the job render keeps the other core), at most `rate` a second (a token bucket), and
answers are cached by settings hash (an LRU bounded in bytes), since the same settings draw the same bytes.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass

import grpc
from PIL import Image

from mintpipe.core.scenes import DEFAULT_SCENE, SettingsError, settings_hash, validate_settings
from mintpipe.limits.memory import KeyedRateLimiter
from mintpipe.v1 import renderer_pb2, renderer_pb2_grpc
from renderer.render import RENDERER_VERSION
from renderer.scenes import SCENE_RENDERERS

DEFAULT_SIZE = 256
MIN_SIZE, MAX_SIZE = 64, 512
MAX_SETTINGS_JSON = 16 * 1024


@dataclass(frozen=True)
class Still:
    png: bytes
    settings_hash: str
    settings_json: str
    size: int
    frame: int


def preview_frame_index(frames: int) -> int:
    """The loop frame a job's preview.png shows (renderer.render picks the same one)."""
    return frames // 3


def draw_still(scene: str, settings: dict, size: int) -> Still:
    """Draws the preview still of complete `settings` at `size` pixels (CPU-bound; run it off the loop)."""
    frame_index = preview_frame_index(settings["frames"])
    frame_at = SCENE_RENDERERS[scene](dict(settings, size=size))
    buffer = io.BytesIO()
    Image.fromarray(frame_at(frame_index)).save(buffer, format="PNG", compress_level=1)
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return Still(buffer.getvalue(), settings_hash(scene, settings), canonical, size, frame_index)


class StillCache:
    """Least recently used stills, at most `max_bytes` of PNG in all."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[str, int], Still] = OrderedDict()

    def get(self, key: tuple[str, int]) -> Still | None:
        still = self._items.get(key)
        if still is not None:
            self._items.move_to_end(key)
        return still

    def put(self, key: tuple[str, int], still: Still) -> None:
        if len(still.png) > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= len(old.png)
        self._items[key] = still
        self.bytes += len(still.png)
        while self.bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= len(dropped.png)

    def __len__(self) -> int:
        return len(self._items)


class PreviewService(renderer_pb2_grpc.RendererServiceServicer):
    def __init__(self, rate_per_second: float = 20.0, burst: int = 40, cache_bytes: int = 32 << 20) -> None:
        self.limiter = KeyedRateLimiter(rate_per_second, 1.0, burst, max_keys=1)
        self.cache = StillCache(cache_bytes)
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self._drawing = asyncio.Semaphore(1)
        self.drawn = 0  # stills actually drawn (cache misses), for tests and logs

    async def RenderPreview(self, request: renderer_pb2.RenderPreviewRequest,
                            context: grpc.aio.ServicerContext) -> renderer_pb2.RenderPreviewResponse:
        scene = request.scene or DEFAULT_SCENE
        if len(request.settings_json) > MAX_SETTINGS_JSON:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"settings: larger than {MAX_SETTINGS_JSON} bytes")
        try:
            raw = json.loads(request.settings_json or "{}")
            settings = validate_settings(scene, raw)
        except json.JSONDecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"settings: not valid JSON ({exc.msg})")
        except SettingsError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if request.size and not MIN_SIZE <= request.size <= MAX_SIZE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"size: {MIN_SIZE}-{MAX_SIZE} pixels")
        size = min(request.size or DEFAULT_SIZE, settings["size"])
        key = (settings_hash(scene, settings), size)
        still = self.cache.get(key)
        cached = still is not None
        if still is None:
            wait = self.limiter.acquire("all")
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                context.set_trailing_metadata((("retry-after", str(seconds)),))
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"preview: this renderer is drawing too many previews; retry in {seconds} s")
            async with self._drawing:
                still = self.cache.get(key)  # another request may have drawn it while this one waited
                cached = still is not None
                if still is None:
                    still = await asyncio.to_thread(draw_still, scene, settings, size)
                    self.drawn += 1
                    self.cache.put(key, still)
        return renderer_pb2.RenderPreviewResponse(
            png=still.png, settings_hash=still.settings_hash, settings_json=still.settings_json, size=still.size,
            frame=still.frame, cached=cached, replica=self.replica, renderer_version=RENDERER_VERSION)
