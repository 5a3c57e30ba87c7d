"""The MP4's RGB -> yuv420p conversion (renderer/encoders/_yuv420.c, integer arithmetic) against an independent
float64 reference of the BT.601 limited-range matrix written here in numpy, and against ffmpeg's own conversion."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from mintpipe.core.scenes import validate_settings
from renderer.encoders import _yuv420
from renderer.scenes import SCENE_RENDERERS

pytestmark = pytest.mark.unit


def reference(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601: Y' = 0.299 R + 0.587 G + 0.114 B; Y = 16 + 219 Y'/255, Cb = 128 + 224 (B - Y')/(1.772·255),
    Cr = 128 + 224 (R - Y')/(1.402·255); chroma from each 2×2 block's mean; rounded to the nearest level."""
    r, g, b = (rgb[..., c].astype(np.float64) for c in range(3))
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 + 224 / 255 * (b - luma) / 1.772
    cr = 128 + 224 / 255 * (r - luma) / 1.402

    def block_mean(p: np.ndarray) -> np.ndarray:
        return (p[0::2, 0::2] + p[0::2, 1::2] + p[1::2, 0::2] + p[1::2, 1::2]) / 4

    planes = [16 + 219 / 255 * luma, block_mean(cb), block_mean(cr)]
    return np.concatenate([np.clip(np.rint(p), 0, 255).astype(np.uint8).reshape(-1) for p in planes])


def convert(rgb: np.ndarray) -> np.ndarray:
    height, width, _ = rgb.shape
    out = np.empty(width * height * 3 // 2, dtype=np.uint8)
    _yuv420.rgb_to_yuv420(np.ascontiguousarray(rgb), width, height, out)
    return out


# The RGB cube's 8 corners, each a uniform 2×2 block (so the chroma mean is the corner's own): black, red, green,
# yellow, blue, magenta, cyan, white. They reach the ends of the chroma range, 16 and 240, that _yuv420.c's
# fixed-point bounds are worked out for.
CORNER_RGB = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)], np.uint8)[
    [0, 4, 2, 6, 1, 5, 3, 7]]
CORNERS = np.ascontiguousarray(np.repeat(np.repeat(CORNER_RGB[None, :, :], 2, axis=0), 2, axis=1))


def _images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12)
    levels = np.arange(256, dtype=np.uint8)
    return {
        "noise": rng.integers(0, 256, (96, 130, 3), dtype=np.uint8),
        "every grey": np.repeat(np.repeat(levels[None, :, None], 3, axis=2), 2, axis=0),
        "primaries": np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8),
        "cube corners": CORNERS,
        "gen1 frame": SCENE_RENDERERS["gen1"](validate_settings("gen1", {"seed": 4, "size": 192, "frames": 10}))(3),
    }


@pytest.mark.parametrize("name", list(_images()))
def test_the_conversion_is_within_one_level_of_the_float_reference(name):
    rgb = _images()[name]
    got, want = convert(rgb).astype(np.int16), reference(rgb).astype(np.int16)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1
    # Off by one only where the exact value lies within a hair of a rounding boundary: almost never.
    assert np.mean(got != want) < 0.001, np.mean(got != want)


def test_greys_have_neutral_chroma_and_the_range_ends_are_exact():
    greys = np.repeat(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2), 2, axis=0)
    out = convert(greys)
    luma, chroma = out[: 2 * 256], out[2 * 256:]
    assert luma[0] == 16 and luma[255] == 235
    assert np.all(np.diff(luma[:256].astype(int)) >= 0)
    assert np.all(chroma == 128)


def test_the_cube_corners_reach_the_chroma_range_ends_exactly():
    out = convert(CORNERS)
    assert np.array_equal(out, reference(CORNERS))
    luma, u, v = out[:2 * 16].reshape(2, 16)[0, ::2], out[2 * 16:2 * 16 + 8], out[2 * 16 + 8:]
    names = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]
    assert dict(zip(names, luma.tolist(), strict=True)) == {
        "black": 16, "red": 81, "green": 145, "yellow": 210, "blue": 41, "magenta": 106, "cyan": 170, "white": 235}
    assert (u.min(), u.max(), v.min(), v.max()) == (16, 240, 16, 240)
    assert u[names.index("blue")] == 240 and u[names.index("yellow")] == 16
    assert v[names.index("red")] == 240 and v[names.index("cyan")] == 16


def test_close_to_what_ffmpeg_makes_of_the_same_frame():
    """swscale's default conversion (what the renderer used before): the same matrix, so the luma is within a
    level; its chroma comes through a wider filter than the 2×2 mean, so it differs a little near edges (measured
    on this frame: 1 % of chroma samples by more than one level, at most 5, 0.18 on average)."""
    rgb = _images()["gen1 frame"]
    height, width, _ = rgb.shape
    theirs = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
         f"{width}x{height}", "-i", "-", "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"],
        input=rgb.tobytes(), capture_output=True, check=True).stdout
    diff = np.abs(convert(rgb).astype(np.int16) - np.frombuffer(theirs, np.uint8).astype(np.int16))
    luma, chroma = diff[: width * height], diff[width * height:]
    assert luma.max() <= 1
    assert np.mean(chroma > 1) < 0.03 and chroma.mean() < 0.3, (np.mean(chroma > 1), chroma.mean())


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="even"):
        _yuv420.rgb_to_yuv420(np.zeros((3, 4, 3), np.uint8), 4, 3, np.empty(18, np.uint8))
    with pytest.raises(ValueError, match="rgb must"):
        _yuv420.rgb_to_yuv420(np.zeros((4, 4, 3), np.uint8), 4, 2, np.empty(12, np.uint8))
    with pytest.raises(ValueError, match="out must"):
        _yuv420.rgb_to_yuv420(np.zeros((4, 4, 3), np.uint8), 4, 4, np.empty(23, np.uint8))
