"""One render job: frames stream once through the GIF and MP4 encoders; the PNG preview is one of them.

Memory stays at a few frames whatever the clip length: frames are made, encoded and dropped one by one.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mintpipe.core.scenes import validate_settings
from renderer.encoders.gif import GifWriter, build_palette, frame_delays_cs, palette_sample_indices
from renderer.encoders.mp4 import Mp4Writer
from renderer.heap import steady_heap
from renderer.scenes import SCENE_RENDERERS

# Bump whenever the bytes of any output change: it is part of the metadata, and a redelivered job rendered
# by another version is rendered again rather than trusted.
RENDERER_VERSION = "1.7.0"
PALETTE_SAMPLES = 8
# zlib level of the preview PNG. Measured on the default job's preview (512×512): level 9 took 0.48 s for
# 161 KB, level 6 (zlib's own default) 59 ms for 172 KB, level 5 33 ms for 180 KB, level 4 22 ms for 187 KB,
# level 3 24 ms for 202 KB, level 1 16 ms for 225 KB (CPU, best of 5). Level 4: the last big step down in CPU
# before the file grows faster than the CPU falls.
PNG_LEVEL = 4
# Frames held for the GIF while the palette is still being fitted (0.8 MB each at 512²). The fit is ~40 ms of CPU,
# but beside the render it took 89-107 ms of wall time (8 default jobs at load average 2.8), longer than 8 frames:
# the main thread then waited 21-47 ms for it (median 37 ms of a ~1 s job) in 7 of the 8, while the fit and ffmpeg
# (on the frames queued) still had the cores. More frames held would cost 0.8 MB each to shorten that wait.
GIF_WAITING = 8
# The GIF's frames encode on one thread beside the render (two before 1.6.0): a frame's mapping and LZW (~2 ms)
# keep up with the render on one, and one runnable thread fewer leaves x264 (the job's longest single thread) more
# of the cores. rj A/B, 4 alternated pairs at load 2.3-3.5: render_job 0.99 -> 0.96 core-s, 0.86 -> 0.76 s wall
# (medians); at load ~1.3, 0.92-0.94 -> 0.87-0.90 core-s, 0.53-0.55 -> 0.50 s.
GIF_THREADS = 1


@dataclass(frozen=True)
class RenderedAsset:
    kind: str  # image | animation | preview
    path: Path
    content_type: str
    size: int
    sha256: str


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _fit_palette(samples: list) -> tuple:
    """The clip's palette and the seconds its fit took (on the helper thread)."""
    began = time.perf_counter()
    palette = build_palette(samples)
    return palette, time.perf_counter() - began


def write_preview(frame, path: Path) -> float:
    """The preview PNG: the frame's pixels exactly (lossless). Pillow's zlib releases the GIL, so this runs on a
    thread of its own while the next frames render. Returns the seconds it took."""
    began = time.perf_counter()
    Image.fromarray(frame).save(path, format="PNG", optimize=False, compress_level=PNG_LEVEL)
    return time.perf_counter() - began


class RenderCancelled(Exception):
    """The caller asked the render to stop (a replica draining on SIGTERM); nothing was written."""


def render_job(scene: str, settings: dict, out_dir: Path,
               on_progress: Callable[[int, str], None] | None = None,
               cancel: threading.Event | None = None, threads: int = 2,
               timings: dict[str, float] | None = None) -> list[RenderedAsset]:
    """Renders the three assets into out_dir. `cancel`, checked between frames, stops the work within a frame
    (a thread cannot be killed, and a draining process would otherwise wait for the whole render). `threads`
    share each frame's pixels; above one, the GIF encodes on a thread of its own (GIF_THREADS); any count gives
    the same bytes. `timings`, when given, receives the seconds spent drawing frames (`draw`) and in each encoder
    (`gif`: palette and frame tasks summed over threads; `mp4`: the ffmpeg process's CPU; `png`: the preview)."""
    settings = validate_settings(scene, settings)
    steady_heap()  # process-wide, once: stops the per-frame page-fault churn (see renderer/heap.py)
    report = on_progress or (lambda _p, _phase: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n, size, fps = settings["frames"], settings["size"], settings["fps"]
    draw_frame = SCENE_RENDERERS[scene](settings, threads)
    spent = {"draw": 0.0, "gif": 0.0, "mp4": 0.0, "png": 0.0}

    def frame_at(i: int):
        began = time.perf_counter()
        try:
            return draw_frame(i)
        finally:
            spent["draw"] += time.perf_counter() - began

    final = {"image": out_dir / "image.gif", "animation": out_dir / "animation.mp4",
             "preview": out_dir / "preview.png"}
    # Temp names are this attempt's own: in compose every replica is PID 1, and one process can hold two attempts
    # of a job (a redelivery after a broker restart, a deadline retry whose thread has not stopped yet). With a
    # shared name the second open would truncate the first writer's file.
    attempt = f"{os.getpid()}.{uuid.uuid4().hex[:12]}"
    temp = {kind: path.with_name(f".{path.name}.{attempt}.tmp") for kind, path in final.items()}
    samples = palette_sample_indices(n, PALETTE_SAMPLES)
    preview_index = n // 3
    every = max(1, min(10, n // 20))
    helper = ThreadPoolExecutor(1, thread_name_prefix="render-helper")  # the palette's fit, then the preview
    preview: Future[float] | None = None
    mp4: Mp4Writer | None = None
    gif: GifWriter | None = None
    try:
        with open(temp["image"], "wb") as fh:
            # The encoder process starts first: its start-up (exec, x264's set-up) overlaps what follows.
            mp4 = Mp4Writer(temp["animation"], size, size, fps)
            # One palette for the whole clip, fitted to frames spread over the loop (rendering is deterministic,
            # so these few frames are simply made twice). It is fitted on the helper thread while the first frames
            # render and go to the MP4 (~40 ms of one core that was otherwise idle before any frame was made);
            # the GIF takes those frames once the palette is there, at most GIF_WAITING of them held meanwhile.
            fitting = helper.submit(_fit_palette, [frame_at(i) for i in samples])
            report(2, "samples")  # the palette's sample frames are made; its fit runs on beside the render
            waiting: list = []
            for k in range(n):
                if cancel is not None and cancel.is_set():
                    raise RenderCancelled(f"stopped at frame {k} of {n}")
                frame = frame_at(k)  # a new array each time, never written again: the encoders read it as is
                mp4.add(frame)
                if gif is None:
                    waiting.append(frame)
                    if fitting.done() or len(waiting) >= GIF_WAITING or k + 1 == n:
                        palette, seconds = fitting.result()
                        spent["gif"] += seconds
                        gif = GifWriter(fh, size, size, palette, frame_delays_cs(n, fps),
                                        GIF_THREADS if threads > 1 else 0)
                        for held in waiting:
                            gif.add(held, copy=False)
                        waiting.clear()
                else:
                    gif.add(frame, copy=False)
                if k == preview_index:
                    preview = helper.submit(write_preview, frame, temp["preview"])
                if (k + 1) % every == 0 or k + 1 == n:
                    report(2 + (93 * (k + 1)) // n, "render")
            assert gif is not None
            gif.close()
        spent["gif"] += gif.encode_seconds  # every frame's task has finished once it is closed
        mp4.close()
        spent["mp4"] = mp4.cpu_seconds
        if preview is not None:
            spent["png"] = preview.result()
    except BaseException:
        if gif is not None:
            gif.abort()
        if mp4 is not None:
            mp4.abort()
        helper.shutdown()  # the preview's file is removed below only once it is no longer being written
        for path in temp.values():
            path.unlink(missing_ok=True)
        raise
    finally:
        helper.shutdown()
    assets = []
    for kind, content_type in (("image", "image/gif"), ("animation", "video/mp4"), ("preview", "image/png")):
        # Size and digest of what this attempt wrote, taken before the rename: another attempt may rename its
        # own copy over the final name at any moment.
        size, digest = temp[kind].stat().st_size, _digest(temp[kind])
        os.replace(temp[kind], final[kind])
        assets.append(RenderedAsset(kind, final[kind], content_type, size, digest))
    report(100, "done")
    if timings is not None:
        timings.update(spent)
    return assets
