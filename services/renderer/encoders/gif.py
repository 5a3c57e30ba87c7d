"""A fast animated-GIF encoder: one global palette fitted once (no per-frame quantisation), and frame
differencing (only the changed box is written; unchanged pixels are transparent).

Pillow does the LZW compression of each frame (C code); the file structure is written here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
from PIL import GifImagePlugin, Image

TRANSPARENT = 255  # palette slot reserved for "unchanged since the previous frame"
# Measured on gen1 (bench/encode.py; mean PSNR of the mapped frames): a median cut on every 16th pixel refined by
# 12 Lloyd rounds on every 8th gives 38.6 dB in 20 ms, where Pillow's own k-means (kmeans=2) on every 8th pixel
# gave 38.3 dB in 67 ms; Pillow's k-means is the slow part, its nearest-colour mapping is fast.
SEED_STRIDE = 16
FIT_STRIDE = 8
FIT_ROUNDS = 12


def palette_image(palette: np.ndarray) -> Image.Image:
    """The palette as a P image, for Pillow's exact nearest-colour mapping (integer arithmetic, so the same
    indices on every machine)."""
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
    def __init__(self, fh: BinaryIO, width: int, height: int, palette: np.ndarray, delays_cs: list[int]) -> None:
        self.fh, self.width, self.height = fh, width, height
        self.delays = delays_cs
        self.index = 0
        self.previous: np.ndarray | None = None
        table = np.zeros((256, 3), dtype=np.uint8)
        table[: len(palette)] = palette
        # Pillow maps each frame to the palette faster than a numpy lookup table would.
        self._palette_image = palette_image(palette)
        fh.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + table.tobytes())
        # NETSCAPE2.0 application extension: loop forever (count 0).
        fh.write(b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")

    def indices(self, frame: np.ndarray) -> np.ndarray:
        mapped = Image.fromarray(frame).quantize(palette=self._palette_image, dither=Image.Dither.NONE)
        return np.asarray(mapped, dtype=np.uint8)

    def add(self, frame: np.ndarray) -> None:
        current = self.indices(frame)
        x0, y0, block = 0, 0, current
        if self.previous is not None:
            # Plain uint8 arithmetic instead of boolean masks (about 15x faster here): `same` is 1 where a
            # pixel keeps its index; 255·same, floored by the index, is the index where it changed and
            # TRANSPARENT (255, above every palette index) where it did not.
            same = np.equal(current, self.previous).view(np.uint8)
            rows = np.flatnonzero(same.min(axis=1) == 0)
            if rows.size == 0:  # identical frame: a 1×1 transparent pixel carries its delay
                y0, y1, x0, x1 = 0, 1, 0, 1
            else:
                y0, y1 = int(rows[0]), int(rows[-1]) + 1
                cols = np.flatnonzero(same[y0:y1].min(axis=0) == 0)
                x0, x1 = int(cols[0]), int(cols[-1]) + 1
            block = np.multiply(same[y0:y1, x0:x1], np.uint8(TRANSPARENT))
            np.maximum(block, current[y0:y1, x0:x1], out=block)
        # No palette on the frame: the file's global table serves every frame (Pillow writes no local one).
        image = Image.frombuffer("P", (block.shape[1], block.shape[0]), np.ascontiguousarray(block), "raw", "P", 0, 1)
        chunks = GifImagePlugin.getdata(image, offset=(int(x0), int(y0)), duration=self.delays[self.index] * 10,
                                        transparency=TRANSPARENT, disposal=1)
        for chunk in chunks:
            self.fh.write(chunk)
        self.previous = current
        self.index += 1

    def close(self) -> None:
        self.fh.write(b";")


def palette_sample_indices(frames: int, samples: int = 8) -> list[int]:
    return sorted({round(i * frames / samples) % frames for i in range(samples)})
