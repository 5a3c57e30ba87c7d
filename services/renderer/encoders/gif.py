"""A fast animated-GIF encoder: one global palette fitted once (no per-frame quantisation), and frame
differencing (only the changed box is written; unchanged pixels are transparent).

The two per-pixel loops, mapping to the palette and LZW, are C (`_gifcodec.c`) and release the GIL: each frame
is mapped and compressed on a small thread pool while the caller makes the next frame. The file's structure is
written here, in order, whatever order the frames finish in.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import numpy as np
from PIL import Image

from renderer.encoders import _gifcodec

TRANSPARENT = 255  # palette slot reserved for "unchanged since the previous frame"
# Measured on gen1 (mean PSNR of the frames as the fit maps them, with Pillow): a median cut on every 16th pixel
# refined by 12 Lloyd rounds on every 8th gives 38.6 dB in 20 ms, where Pillow's own k-means (kmeans=2) on every
# 8th pixel gave 38.3 dB in 67 ms; Pillow's k-means is the slow part, its nearest-colour mapping is fast.
SEED_STRIDE = 16
FIT_STRIDE = 8
FIT_ROUNDS = 12


def palette_image(palette: np.ndarray) -> Image.Image:
    """The palette as a P image, for Pillow's nearest-colour mapping while fitting (integer arithmetic, so the
    same palette on every machine)."""
    image = Image.new("P", (1, 1))
    image.putpalette(palette.reshape(-1).tolist())
    return image


def build_palette(samples: Iterable[np.ndarray], colors: int = 255) -> np.ndarray:
    """A palette of `colors` entries (uint8, colors×3) fitted to sample frames from across the loop."""
    # Copies of the strided pixels, so each full sample frame can be freed as soon as it has been read.
    fit = np.concatenate([np.ascontiguousarray(s[::FIT_STRIDE, ::FIT_STRIDE]) for s in samples], axis=0)
    step = SEED_STRIDE // FIT_STRIDE
    seed = Image.fromarray(np.ascontiguousarray(fit[::step, ::step])).quantize(
        colors=colors, method=Image.Quantize.MEDIANCUT, kmeans=0, dither=Image.Dither.NONE)
    flat = np.array(seed.getpalette()[: colors * 3], dtype=np.uint8)
    palette = np.zeros((colors, 3), dtype=np.uint8)
    palette[: len(flat) // 3] = flat.reshape(-1, 3)
    return _refine(Image.fromarray(fit), palette, FIT_ROUNDS)


def _refine(pixels: Image.Image, palette: np.ndarray, rounds: int) -> np.ndarray:
    """Lloyd's k-means rounds: each entry moves to the mean of the pixels nearest to it (unused ones stay)."""
    channels = [np.asarray(pixels)[..., c].reshape(-1).astype(np.float64) for c in range(3)]
    n = len(palette)
    for _ in range(rounds):
        nearest = np.asarray(pixels.quantize(palette=palette_image(palette), dither=Image.Dither.NONE)).reshape(-1)
        count = np.bincount(nearest, minlength=256)[:n]
        used = count > 0
        for c, values in enumerate(channels):
            total = np.bincount(nearest, weights=values, minlength=256)[:n]
            palette[used, c] = np.rint(total[used] / count[used])
    return palette


def frame_delays_cs(frames: int, fps: int) -> list[int]:
    """Per-frame delays in centiseconds whose running sum tracks the true clock (30 fps: 3, 3, 4, …)."""
    edges = [round(100 * k / fps) for k in range(frames + 1)]
    return [edges[k + 1] - edges[k] for k in range(frames)]


class GifWriter:
    """Writes frames as they come. Each frame is one task on a pool of `threads`: map it to the palette, publish
    its indices, take the previous frame's, and compress what changed. The GIL is released in both loops, so
    frames are encoded on every core while the caller makes the next ones. At most twice `threads` frames wait
    in memory, whatever the clip length. `threads=0` encodes on the caller's thread instead (same bytes). Use it
    as a context manager, or call close() (abort() on failure)."""

    def __init__(self, fh: BinaryIO, width: int, height: int, palette: np.ndarray, delays_cs: list[int],
                 threads: int = 2) -> None:
        if not 1 <= len(palette) <= TRANSPARENT:
            raise ValueError(f"palette must have 1 to {TRANSPARENT} colours (slot {TRANSPARENT} is transparent)")
        self.fh, self.width, self.height = fh, width, height
        self.delays = delays_cs
        self.index = 0
        self._palette = np.ascontiguousarray(palette, dtype=np.uint8).tobytes()
        self._luts = threading.local()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="gif") if threads else None
        self._pending: deque[Future[bytes]] = deque()
        self._ahead = 2 * threads
        self._previous: Future[np.ndarray] | None = None
        # Seconds each frame's task spent encoding (not waiting for the frame before it), summed over the pool's
        # threads: the renderer's mintpipe_encode_seconds{encoder="gif"}. list.append is atomic under the GIL.
        self._busy: list[float] = []
        table = np.zeros((256, 3), dtype=np.uint8)
        table[: len(palette)] = palette
        fh.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + table.tobytes())
        # NETSCAPE2.0 application extension: loop forever (count 0).
        fh.write(b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")

    def indices(self, frame: np.ndarray) -> np.ndarray:
        """The frame's palette indices (height×width uint8): the nearest entry to each pixel's 6-bit bin."""
        lut = getattr(self._luts, "lut", None)
        if lut is None:
            # One cache per thread (so no two threads write one), filled as bins are first met: a few ms a clip.
            lut = self._luts.lut = np.full(1 << 18, TRANSPARENT, dtype=np.uint8)
        current = np.empty((self.height, self.width), dtype=np.uint8)
        _gifcodec.map_frame(frame, self._palette, lut, current)
        return current

    def add(self, frame: np.ndarray, copy: bool = True) -> None:
        """Queues a frame. With copy=False the pool reads the caller's array later, so the caller must not
        write to it again (render_job's frames are new arrays: a 768 KB copy a frame saved)."""
        if np.shape(frame) != (self.height, self.width, 3):
            raise ValueError(f"frame must be {self.height}x{self.width}x3 RGB, not {np.shape(frame)}")
        mapped: Future[np.ndarray] = Future()
        step = (self.delays[self.index], mapped, self._previous)
        if self._pool is None:
            job: Future[bytes] = Future()
            job.set_result(self._encode(np.ascontiguousarray(frame, dtype=np.uint8), *step))
        else:
            # Read later, on the pool: a copy (~0.1 ms at 512²) unless the caller hands the array over.
            owned = np.array(frame, dtype=np.uint8, order="C") if copy else np.ascontiguousarray(frame, np.uint8)
            job = self._pool.submit(self._encode, owned, *step)
        self._pending.append(job)
        self._previous = mapped
        self.index += 1
        self._write_ready(keep=self._ahead)

    def _encode(self, frame: np.ndarray, delay_cs: int, mapped: Future[np.ndarray],
                previous: Future[np.ndarray] | None) -> bytes:
        """One frame's bytes. Tasks start in submission order, so the previous frame's task is already running
        when this one waits for its indices (published before it compresses): no deadlock, no serialising."""
        began = time.perf_counter()
        try:
            current = self.indices(frame)
        except BaseException as exc:
            mapped.set_exception(exc)
            raise
        mapped.set_result(current)
        mapping = time.perf_counter() - began
        before = previous.result() if previous is not None else None
        began = time.perf_counter()
        try:
            return self._compress(current, before, delay_cs)
        finally:
            self._busy.append(mapping + time.perf_counter() - began)

    @property
    def encode_seconds(self) -> float:
        return sum(self._busy)

    def _compress(self, current: np.ndarray, before: np.ndarray | None, delay_cs: int) -> bytes:
        box = (0, 0, self.width, self.height)
        if before is not None:
            # Identical frame: a 1×1 transparent pixel carries its delay.
            box = _gifcodec.changed_box(current, before, self.width) or (0, 0, 1, 1)
        x0, y0, x1, y1 = box
        # Graphic control extension (leave the frame in place, slot 255 transparent, the delay), then the image
        # descriptor with no local colour table: the file's global table serves every frame.
        return (struct.pack("<4BHBB", 0x21, 0xF9, 4, (1 << 2) | 1, delay_cs, TRANSPARENT, 0)
                + struct.pack("<BHHHHB", 0x2C, x0, y0, x1 - x0, y1 - y0, 0)
                + _gifcodec.lzw(current, before, self.width, box, TRANSPARENT))

    def _write_ready(self, keep: int) -> None:
        """Writes finished frames in order; waits for the oldest while more than `keep` are pending."""
        while self._pending and (len(self._pending) > keep or self._pending[0].done()):
            self.fh.write(self._pending.popleft().result())

    def close(self) -> None:
        try:
            self._write_ready(keep=0)
            self.fh.write(b";")
        finally:
            if self._pool is not None:
                self._pool.shutdown()

    def abort(self) -> None:
        """Writes nothing more. The few frames in flight (at most twice `threads`) are left to finish rather than
        cancelled: a frame's task waits for the one before it, and a task a worker has already taken from the
        queue can still be cancelled, which would leave the next one waiting forever."""
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> GifWriter:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def palette_sample_indices(frames: int, samples: int = 8) -> list[int]:
    return sorted({round(i * frames / samples) % frames for i in range(samples)})
