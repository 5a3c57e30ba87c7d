"""The MP4's bytes whatever SIMD paths x264 picks on the host: the renderer's own command line
(renderer.encoders.mp4), run with x264's CPU detection (what production does) and again with its assembly limited
to SSSE3 (no AVX, AVX2 or AVX-512), must write the same file; so must SSE2 only and none (its C functions), against
each other. x264 checks most of its assembly to be exact against its C, but not mbtree_propagate_cost (float, with
an approximate reciprocal in its SIMD versions): with the macroblock tree on, both comparisons fail (see mp4.py)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from mintpipe.core.scenes import validate_settings
from renderer.encoders import _yuv420
from renderer.encoders.mp4 import X264_PARAMS, ffmpeg_command
from renderer.scenes import SCENE_RENDERERS

pytestmark = pytest.mark.unit

FRAMES = 20  # the default job's first 20: twice x264's rate-control lookahead


@pytest.fixture(scope="module")
def yuv() -> bytes:
    settings = validate_settings("gen1", {"seed": 7})
    frame_at = SCENE_RENDERERS["gen1"](settings)
    size = settings["size"]
    planes = np.empty(size * size * 3 // 2, np.uint8)
    chunks = []
    for k in range(FRAMES):
        _yuv420.rgb_to_yuv420(frame_at(k), size, size, planes)
        chunks.append(planes.tobytes())
    return b"".join(chunks)


def _encode(yuv: bytes, path, params: str = X264_PARAMS) -> bytes:
    subprocess.run(ffmpeg_command(path, 512, 512, 25, params=params), input=yuv, check=True, capture_output=True)
    return path.read_bytes()


@pytest.mark.parametrize("one, other", [("auto", "SSSE3"), ("SSE2", "0")],
                         ids=["detected vs no AVX at all", "SSE2 only vs C only"])
def test_the_mp4_does_not_depend_on_the_cpus_simd(tmp_path, yuv, one, other):
    """On this AVX-512 host the first pair is what a 2010s x86 server and a current one pick. The second is the
    hole mp4.py states: without SSSE3 x264 writes other bytes, but the same on every such CPU."""
    first = _encode(yuv, tmp_path / "one.mp4", f"{X264_PARAMS}:asm={one}")
    second = _encode(yuv, tmp_path / "other.mp4", f"{X264_PARAMS}:asm={other}")
    assert len(first) > 10_000
    assert first == second


def test_asm_auto_is_what_the_renderer_runs(tmp_path, yuv):
    assert _encode(yuv, tmp_path / "plain.mp4") == _encode(yuv, tmp_path / "auto.mp4", f"{X264_PARAMS}:asm=auto")
