"""gen1's frames through the C kernel (`_gen1.c`): the scalar work per frame (positions, trigonometry, boxes)
here, as gen1.py does it, and the per-pixel work in C, in bands of rows on a few threads with the GIL released.

The kernel is gen1.py's numpy `band`/`_draw` step for step in IEEE float32, so the frames are the same bytes
(tests/unit/test_render.py compares them). Measured on the default job (100 frames of 512×512): numpy 0.82 core-s,
this ~0.2 (see bench/job_cost.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from renderer.scenes import _gen1
from renderer.scenes.gen1 import _SINE, Composition, _position, qcos, qsin

KINDS = {"circle": 0, "ring": 1, "polygon": 2}
SHAPE_STRIDE = 26  # float32 fields per shape record (S_STRIDE in _gen1.c)
PARAMS = 22  # P_COUNT in _gen1.c
BANDS_PER_THREAD = 4  # rows are dealt in bands, round robin, so shapes crowding one half do not idle a core

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    """One process-wide pool for the extra threads (a replica renders one job at a time; tests make many)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="gen1")
        return _pool


def frame_params(scene: Composition, t: float) -> np.ndarray:
    values: list[float] = []
    for w in scene.warps:
        values += [w.fx, w.fy, w.cycles * t + w.phase]
    for w in scene.silk:
        values += [w.fx, w.fy, w.cycles * t + w.phase, w.weight]
    light = scene.light
    values += [light.fx, light.fy, light.cycles * t + light.phase, float(scene.total_weight)]
    assert len(values) == PARAMS
    return np.array(values, dtype=np.float32)  # each double rounded once to float32, as np.float32(x) does


def shape_records(scene: Composition, t: float) -> np.ndarray:
    """One record per shape, with what gen1._draw computes before its per-pixel work."""
    size = scene.size
    records = np.zeros((len(scene.shapes), SHAPE_STRIDE), dtype=np.float32)
    for i, s in enumerate(scene.shapes):
        x, y, radius = _position(s, t, scene.motion, scene.centre)
        radius = max(radius, 2.0)
        reach = radius * 2.2
        x0, x1 = max(int(x - reach), 0), min(int(x + reach) + 1, size)
        y0, y1 = max(int(y - reach), 0), min(int(y + reach) + 1, size)
        if x0 >= x1 or y0 >= y1:
            x0 = x1 = y0 = y1 = 0
        rec = records[i]
        rec[:7] = (KINDS[s.kind], x0, y0, x1, y1, x, y)
        if s.kind == "polygon":
            spin = s.angle + abs(s.cycles) * t
            rec[7] = radius * qcos(0.5 / s.sides)
            rec[13] = s.sides
            for j in range(s.sides):
                rec[14 + j] = qcos(spin + j / s.sides)
                rec[20 + j] = qsin(spin + j / s.sides)
        else:
            rec[7] = radius
            rec[8] = max(radius * 0.12, 1.5)
        rec[9] = radius * 0.35
        rec[10:13] = s.color
    return records


def prepare(scene: Composition, threads: int = 2):
    size, n = scene.size, scene.frames
    tables = (_SINE, scene.colours, scene.vignette, scene.unit)
    for table in tables:
        assert table.dtype == np.float32 and table.flags.c_contiguous
    band = max(1, -(-size // (threads * BANDS_PER_THREAD)))
    starts = list(range(0, size, band))
    pool = _executor(threads - 1) if threads > 1 else None

    def frame(k: int) -> np.ndarray:
        t = (k % n) / n  # turns of the loop
        params, shapes = frame_params(scene, t), shape_records(scene, t)
        out = np.empty((size, size, 3), dtype=np.uint8)

        def work(first: int) -> None:
            for r0 in starts[first::threads]:
                _gen1.rows(out, size, r0, min(r0 + band, size), params, shapes, *tables)

        if pool is None:
            work(0)
        else:
            others = [pool.submit(work, i) for i in range(1, threads)]
            work(0)
            for job in others:
                job.result()
        return out

    return frame
