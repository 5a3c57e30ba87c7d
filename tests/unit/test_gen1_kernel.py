"""gen1's C kernel (`renderer/scenes/_gen1.c`) against its numpy reference (gen1.prepare_numpy), bit for bit, and
the renderer's bytes across thread counts, runs and the cores a process may use."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mintpipe.core.scenes import validate_settings
from renderer.render import render_job
from renderer.scenes import _gen1, gen1, gen1_c

pytestmark = pytest.mark.unit

CASES = [
    {"seed": 7},  # the default job
    {"seed": 1, "shapes": "polygons", "motion": "spiral", "size": 192, "frames": 24},
    {"seed": 2, "shapes": "rings", "motion": "drift", "palette": "ember", "size": 200},
    {"seed": 3, "shapes": "circles", "motion": "pulse", "palette": "mono", "count": 12, "speed": 3, "size": 136},
]


@pytest.mark.parametrize("settings", CASES, ids=lambda s: f"seed{s['seed']}")
def test_the_c_kernel_makes_the_numpy_reference_frames_bit_for_bit(settings):
    settings = validate_settings("gen1", settings)
    reference, kernel = gen1.prepare_numpy(settings), gen1.prepare(settings)
    n = settings["frames"]
    for k in sorted({0, 1, n // 3, n // 2, n - 1}):
        want, got = reference(k), kernel(k)
        assert got.dtype == np.uint8 and got.shape == want.shape
        differ = np.argwhere(got != want)
        assert differ.size == 0, f"frame {k}: {len(differ)} values differ, first at {differ[0].tolist()}"


def test_any_thread_count_gives_the_same_frames():
    settings = validate_settings("gen1", {"seed": 5, "size": 232, "frames": 12})
    one = gen1.prepare(settings, threads=1)
    for threads in (2, 3, 4):
        other = gen1.prepare(settings, threads=threads)
        for k in (0, 7):
            assert np.array_equal(other(k), one(k)), (threads, k)


def test_the_frames_are_the_same_bits_on_every_machine():
    """A digest taken when the kernel was written (x86-64 with AVX2, and the numpy reference gave the same): a
    machine whose compiler fused or reordered an operation, or whose CPU lacks AVX2 (the kernel's other build),
    would differ here."""
    settings = validate_settings("gen1", {"seed": 42, "palette": "lagoon", "size": 192, "frames": 24})
    frame_at = gen1.prepare(settings)
    digest = hashlib.sha256(b"".join(frame_at(k).tobytes() for k in range(24))).hexdigest()
    assert digest == FRAMES_SHA256


def test_render_job_bytes_are_identical_across_thread_counts_and_runs(tmp_path):
    settings = {"seed": 9, "palette": "orchid", "size": 160, "frames": 20, "fps": 20}
    outputs = []
    for i, threads in enumerate((1, 2, 2, 4)):
        assets = render_job("gen1", settings, tmp_path / str(i), threads=threads)
        outputs.append({a.kind: a.path.read_bytes() for a in assets})
    for other in outputs[1:]:
        for kind in ("image", "animation", "preview"):
            assert other[kind] == outputs[0][kind], kind


def test_render_job_bytes_do_not_depend_on_how_many_cores_the_process_may_use(tmp_path):
    """Another machine, as far as one machine can play it: the same job in a process allowed one core and in one
    allowed them all. An encoder that sized its threads by the cores (x264 and ffmpeg do by default) would
    write other bytes in the first."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a machine with two cores or more")
    settings = json.dumps({"seed": 4, "palette": "ember", "size": 176, "frames": 16})
    script = ("import os, sys, json; from pathlib import Path; from renderer.render import render_job; "
              "cores = int(sys.argv[1]); os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores])) "
              "if cores else None; render_job('gen1', json.loads(sys.argv[2]), Path(sys.argv[3]), threads=2)")
    outputs = []
    for cores in (1, 0):
        out = tmp_path / f"cores{cores}"
        subprocess.run([sys.executable, "-c", script, str(cores), settings, str(out)], check=True, timeout=120)
        outputs.append({name: (out / name).read_bytes() for name in ("image.gif", "animation.mp4", "preview.png")})
    for name in outputs[0]:
        assert outputs[0][name] == outputs[1][name], name


def test_the_kernel_refuses_buffers_of_the_wrong_size():
    scene = gen1.compose(validate_settings("gen1", {"seed": 1, "size": 128, "frames": 10}))
    params, shapes = gen1_c.frame_params(scene, 0.0), gen1_c.shape_records(scene, 0.0)
    tables = (gen1._SINE, scene.colours, scene.vignette, scene.unit)
    out = np.empty((128, 128, 3), dtype=np.uint8)
    _gen1.rows(out, 128, 0, 128, params, shapes, *tables)  # well-formed: fine
    with pytest.raises(ValueError, match="out must be"):
        _gen1.rows(np.empty((128, 128), dtype=np.uint8), 128, 0, 128, params, shapes, *tables)
    with pytest.raises(ValueError, match="rows must lie"):
        _gen1.rows(out, 128, 0, 129, params, shapes, *tables)
    with pytest.raises(ValueError, match="wrong size"):
        _gen1.rows(out, 128, 0, 128, params[:-1], shapes, *tables)
    bad = shapes.copy()
    bad[0, 3] = 129  # a box past the row's end
    with pytest.raises(ValueError, match="box"):
        _gen1.rows(out, 128, 0, 128, params, bad, *tables)


FRAMES_SHA256 = "3cf1d771d89ed5f0b6a50bf20a6a94f3f01d3364f0489a2e51c59fad8d970631"
