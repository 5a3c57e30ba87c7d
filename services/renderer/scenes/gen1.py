"""gen1, "Orbital blooms": glowing shapes orbit, pulse, drift or spiral over a slowly flowing silk of colour.

Seamless: every moving thing turns a whole number of cycles per loop (phase k/N turns), so frame N is frame 0.

Deterministic on any machine: the composition comes from a seeded PCG64 generator; per-pixel work is only IEEE
+, -, *, /, sqrt, min, max, comparisons and table look-ups, whose results are the same bits everywhere (numpy's own
sin/exp are not: their SIMD versions differ between CPUs). Sines come from a table and scalar trigonometry is
rounded to 2^-24, so a last-bit difference between C libraries cannot reach a pixel (it would have to land exactly
on a rounding boundary).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from renderer.scenes.palettes import PALETTES, gradient_table

TABLE_BITS = 12
TABLE = 1 << TABLE_BITS
BAND_ROWS = 64
PHASE_OFFSET = 64.0  # turns added so that phases stay positive (truncation then equals floor)


def qsin(turns: float) -> float:
    """sin(2π·turns), rounded to 2^-24 so that any correct libm gives the same value."""
    return round(math.sin(2.0 * math.pi * turns) * (1 << 24)) / (1 << 24)


def qcos(turns: float) -> float:
    return qsin(turns + 0.25)


_SINE = np.array([qsin(i / TABLE) for i in range(TABLE)], dtype=np.float32)


def wave(phase_turns: np.ndarray) -> np.ndarray:
    """sin(2π·phase) per pixel through the table (phase in turns, > -PHASE_OFFSET)."""
    index = ((phase_turns + np.float32(PHASE_OFFSET)) * np.float32(TABLE)).astype(np.int32)
    index &= TABLE - 1
    return _SINE.take(index)


@dataclass(frozen=True)
class Wave:
    fx: float  # turns across the image, x and y
    fy: float
    cycles: int  # turns per loop
    phase: float
    weight: float


@dataclass(frozen=True)
class Shape:
    kind: str  # circle | ring | polygon
    angle: float  # turns
    orbit: float
    radius: float
    cycles: int
    phase: float  # turns
    sides: int
    color: np.ndarray  # float32 RGB, 0-1


def _waves(rng: np.random.Generator, count: int, fmin: float, fmax: float, speed: int) -> list[Wave]:
    waves = []
    for _ in range(count):
        direction, freq = float(rng.random()), fmin + (fmax - fmin) * float(rng.random())
        cycles = int(rng.integers(1, speed + 1)) * (1 if rng.random() < 0.5 else -1)
        waves.append(Wave(freq * qcos(direction), freq * qsin(direction), cycles, float(rng.random()),
                          0.5 + float(rng.random())))
    return waves


def _shapes(rng: np.random.Generator, settings: dict) -> list[Shape]:
    size, kinds = settings["size"], settings["shapes"]
    ink = PALETTES[settings["palette"]]["ink"]
    fixed = {"circles": "circle", "polygons": "polygon", "rings": "ring"}.get(kinds)
    shapes = []
    for _ in range(settings["count"]):
        kind = fixed or ("circle", "ring", "polygon")[int(rng.integers(0, 3))]
        cycles = int(rng.integers(1, settings["speed"] + 1)) * (1 if rng.random() < 0.6 else -1)
        shapes.append(Shape(
            kind=kind, angle=float(rng.random()), orbit=size * (0.06 + 0.36 * float(rng.random())),
            radius=size * (0.02 + 0.07 * float(rng.random())), cycles=cycles, phase=float(rng.random()),
            sides=int(rng.integers(3, 7)),
            color=np.array(ink[int(rng.integers(0, len(ink)))], dtype=np.float32) / np.float32(255.0),
        ))
    return shapes


@dataclass(frozen=True)
class Composition:
    """What every frame of one clip shares: the seeded waves and shapes, and the per-pixel tables."""
    size: int
    frames: int
    motion: str
    warps: list[Wave]
    silk: list[Wave]
    light: Wave
    shapes: list[Shape]
    colours: np.ndarray  # 1024×3 float32
    coords: np.ndarray  # 0..size-1, float32
    unit: np.ndarray  # 0..1 across the image, float32
    vignette: np.ndarray  # size×size float32
    centre: float
    total_weight: np.float32


def compose(settings: dict) -> Composition:
    size = settings["size"]
    rng = np.random.Generator(np.random.PCG64(settings["seed"]))
    warps = _waves(rng, 2, 0.6, 1.6, settings["speed"])
    silk = _waves(rng, 3, 0.8, 2.4, settings["speed"])
    light = _waves(rng, 1, 0.5, 1.2, settings["speed"])[0]
    shapes = _shapes(rng, settings)
    coords = np.arange(size, dtype=np.float32)
    centre = size / 2.0
    d2 = ((coords - np.float32(centre)) / np.float32(centre)) ** 2
    vignette = np.float32(1.0) - np.float32(0.5) * np.minimum((d2[:, None] + d2[None, :]) * np.float32(0.5),
                                                              np.float32(1.0))
    return Composition(size, settings["frames"], settings["motion"], warps, silk, light, shapes,
                       gradient_table(PALETTES[settings["palette"]]["silk"], 1024), coords,
                       coords / np.float32(size), np.ascontiguousarray(vignette, dtype=np.float32), centre,
                       np.float32(sum(w.weight for w in silk)))


def prepare(settings: dict, threads: int = 2):
    """Precompute what every frame shares; return frame(k) → size×size×3 uint8, made by the C kernel
    (`_gen1.c`) in bands of rows on `threads` threads (any count gives the same bytes: each pixel is made alone)."""
    from renderer.scenes import gen1_c  # it builds on this module

    return gen1_c.prepare(compose(settings), threads)


def prepare_numpy(settings: dict):
    """The same frames in numpy, bit for bit (the C kernel's reference in the tests; ~3× its CPU time)."""
    scene = compose(settings)
    size, n, motion = scene.size, scene.frames, scene.motion
    warps, silk, light, shapes, colours = scene.warps, scene.silk, scene.light, scene.shapes, scene.colours
    coords, unit, vignette, centre, total_weight = (scene.coords, scene.unit, scene.vignette, scene.centre,
                                                    scene.total_weight)

    def plane(w: Wave, t: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return wave(np.float32(w.fx) * xs + np.float32(w.fy) * ys + np.float32(w.cycles * t + w.phase))

    def band(t: float, r0: int, r1: int, placed: list[tuple[Shape, float, float, float]]) -> np.ndarray:
        xs, ys = unit[None, :], unit[r0:r1, None]
        # Domain warp: the silk's coordinates are bent by two slow waves, which gives the flowing folds.
        u = xs + np.float32(0.16) * plane(warps[0], t, xs, ys)
        v = ys + np.float32(0.16) * plane(warps[1], t, xs, ys)
        field = np.zeros((r1 - r0, size), dtype=np.float32)
        for w in silk:
            field += np.float32(w.weight) * plane(w, t, u, v)
        field /= total_weight  # -1..1
        # Softly folded gradient position: the fold brings the bright end of the palette to the crests.
        g = np.abs(field)
        g = g * (np.float32(2.0) - g)
        # Kept to the palette's lower two thirds (dark veins where the field crosses zero), so shapes stand out.
        index = (g * np.float32(0.6 * 1023.0) + np.float32(0.1 * 1023.0)).astype(np.int32)
        img = colours.take(index, axis=0)
        shade = (np.float32(0.78) + np.float32(0.22) * plane(light, t, xs, ys)) * vignette[r0:r1]
        img *= shade[..., None]
        for shape, x, y, radius in placed:
            _draw(img, r0, shape, t, x, y, radius, coords)
        mapped = img / (np.float32(1.0) + np.float32(0.35) * img)  # soft shoulder: overlaps glow, never clip
        return np.clip(mapped * np.float32(255.0 * 1.35) + np.float32(0.5), 0, 255).astype(np.uint8)

    def frame(k: int) -> np.ndarray:
        t = (k % n) / n  # turns of the loop
        placed = [(shape, *_position(shape, t, motion, centre)) for shape in shapes]
        out = np.empty((size, size, 3), dtype=np.uint8)
        # Made in bands of rows: every step is per pixel, so the bytes are the same as a whole-frame pass, and
        # the temporaries (a dozen float32 planes) stay a few MB instead of ~18 MB at 512×512.
        for r0 in range(0, size, BAND_ROWS):
            r1 = min(r0 + BAND_ROWS, size)
            out[r0:r1] = band(t, r0, r1, placed)
        return out

    return frame


def _position(s: Shape, t: float, motion: str, centre: float) -> tuple[float, float, float]:
    a = s.angle + s.cycles * t
    beat = abs(s.cycles) * t + s.phase
    breathe = 1.0 + 0.18 * qsin(beat)
    if motion == "pulse":
        x, y = centre + s.orbit * qcos(s.angle), centre + s.orbit * qsin(s.angle)
        return x, y, s.radius * (1.0 + 0.55 * qsin(beat))
    if motion == "drift":
        x = centre + s.orbit * qcos(s.cycles * t + s.phase)
        y = centre + s.orbit * qsin(2 * s.cycles * t + s.angle)
        return x, y, s.radius * breathe
    if motion == "spiral":
        r = s.orbit * (0.55 + 0.45 * qsin(beat))
        return centre + r * qcos(a), centre + r * qsin(a), s.radius * breathe
    return centre + s.orbit * qcos(a), centre + s.orbit * qsin(a), s.radius * breathe


def _draw(img: np.ndarray, r0: int, s: Shape, t: float, x: float, y: float, radius: float,
          coords: np.ndarray) -> None:
    """Adds shape `s` (centred at x, y) to `img`, a band of the frame whose first row is r0."""
    radius = max(radius, 2.0)
    reach = radius * 2.2  # the glow reaches past the edge
    size = img.shape[1]
    x0, x1 = max(int(x - reach), 0), min(int(x + reach) + 1, size)
    y0, y1 = max(int(y - reach), 0, r0), min(int(y + reach) + 1, size, r0 + img.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    dx = coords[x0:x1][None, :] - np.float32(x)
    dy = coords[y0:y1][:, None] - np.float32(y)
    if s.kind == "polygon":
        spin = s.angle + abs(s.cycles) * t
        edge = None
        for j in range(s.sides):
            a = spin + j / s.sides
            d = dx * np.float32(qcos(a)) + dy * np.float32(qsin(a))
            edge = d if edge is None else np.maximum(edge, d)
        edge = edge - np.float32(radius * qcos(0.5 / s.sides))
    else:
        dist = np.sqrt(dx * dx + dy * dy)
        if s.kind == "ring":
            edge = np.abs(dist - np.float32(radius)) - np.float32(max(radius * 0.12, 1.5))
        else:
            edge = dist - np.float32(radius)
    body = np.clip(np.float32(0.5) - edge, np.float32(0.0), np.float32(1.0))  # one-pixel anti-aliased edge
    soft = np.float32(radius * 0.35)
    glow = soft / (np.maximum(edge, np.float32(0.0)) + soft)
    glow = glow * glow * np.float32(0.22)
    img[y0 - r0:y1 - r0, x0:x1] += (body * np.float32(0.85) + glow)[..., None] * s.color
