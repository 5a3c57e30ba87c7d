"""The GIF encoder's C loops (renderer/encoders/_gifcodec.c), checked against independent implementations:

- LZW: what it writes is read back exactly by three decoders that share no code with it or each other: Pillow's
  (C), ffmpeg's (libavcodec) and omggif's (JavaScript, tests/support/gif_decode.mjs), over shapes that reach every
  corner of GIF's LZW: table resets, code-width changes, the "string just added" case, one-pixel frames. Those
  three stop once the image is full, so a strict decoder (tests/support/gif_lzw.py) also reads to the end code.
- Palette mapping: equal to a brute-force nearest-colour search written here in numpy.
- Whole animations from GifWriter: every decoder's frame k, drawn over the ones before it, is frame k's colours.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from renderer.encoders import _gifcodec
from renderer.encoders.gif import TRANSPARENT, GifWriter
from tests.support import gif_lzw
from tests.support.media import decode_frames

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
JS_DECODER = ROOT / "tests" / "support" / "gif_decode.mjs"


def _grid_palette() -> np.ndarray:
    """255 colours at least 40 apart in some channel: every one is the nearest entry to its own 6-bit bin, so an
    image of palette colours maps back to exactly the indices it was made from."""
    levels = np.arange(7) * 40
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid[:TRANSPARENT].astype(np.uint8)


PALETTE = _grid_palette()


def _patterns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2026)
    runs = np.repeat(rng.integers(0, 255, 4000), rng.integers(1, 40, 4000))[: 173 * 211].reshape(173, 211)
    y, x = np.mgrid[0:240, 0:320]
    return {
        # 8 bits a pixel of entropy: the table fills every ~3800 codes and is cleared, many times over.
        "noise": rng.integers(0, 255, (97, 131)).astype(np.uint8),
        # One colour: strings grow by one pixel at a time, and each code is written the moment it is added.
        "constant": np.full((300, 300), 7, np.uint8),
        "two colours": rng.integers(0, 2, (256, 256)).astype(np.uint8),
        "runs": runs.astype(np.uint8),
        "gradient": ((x + y) % 255).astype(np.uint8),
        "one pixel": np.array([[254]], np.uint8),
        "one row": rng.integers(0, 255, (1, 5000)).astype(np.uint8),
        "one column": rng.integers(0, 3, (5000, 1)).astype(np.uint8),
        # Ends just as the table reaches 1024 codes, its bits on a byte boundary: the end code must be written
        # 11 bits wide (found by review: it was written 10 wide, which lenient decoders do not notice).
        "ends as the width grows": np.random.default_rng(3).integers(0, 255, 40000)[:8647].astype(np.uint8)[None, :],
    }


PATTERNS = _patterns()


def _single_frame_gif(indices: np.ndarray) -> bytes:
    """A minimal GIF around one lzw() stream, written here rather than by GifWriter."""
    h, w = indices.shape
    table = np.zeros((256, 3), np.uint8)
    table[: len(PALETTE)] = PALETTE
    data = _gifcodec.lzw(np.ascontiguousarray(indices), None, w, (0, 0, w, h), TRANSPARENT)
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + table.tobytes()
            + struct.pack("<BHHHHB", 0x2C, 0, 0, w, h, 0) + data + b";")


def _js_decode(path: Path) -> tuple[np.ndarray, dict]:
    if shutil.which("node") is None or not (ROOT / "node_modules" / "omggif").is_dir():
        pytest.fail("the GIF tests need node and node_modules/omggif as an independent decoder: run `npm ci` "
                    "(scripts/bootstrap.sh does)")
    out = subprocess.run(["node", str(JS_DECODER), str(path)], cwd=ROOT, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    info = json.loads(out.stderr.decode().strip().splitlines()[-1])
    rgba = np.frombuffer(out.stdout, np.uint8).reshape(len(info["frames"]), info["height"], info["width"], 4)
    return rgba[..., :3], info


@pytest.mark.parametrize("name", list(PATTERNS))
def test_every_decoder_reads_back_exactly_the_indices_written(tmp_path, name):
    indices = PATTERNS[name]
    path = tmp_path / "one.gif"
    path.write_bytes(_single_frame_gif(indices))

    with Image.open(path) as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image), indices, err_msg="Pillow")
    np.testing.assert_array_equal(decode_frames(path)[0], PALETTE[indices], err_msg="ffmpeg")
    js, _ = _js_decode(path)
    np.testing.assert_array_equal(js[0], PALETTE[indices], err_msg="omggif")
    data = _gifcodec.lzw(indices, None, indices.shape[1], (0, 0, indices.shape[1], indices.shape[0]), TRANSPARENT)
    assert gif_lzw.decode(data, indices.size) == indices.tobytes()


def test_only_the_box_is_written_and_unchanged_pixels_are_transparent():
    rng = np.random.default_rng(8)
    before = rng.integers(0, 255, (60, 80)).astype(np.uint8)
    after = before.copy()
    after[10:50, 5:70] = np.where(rng.random((40, 65)) < 0.5, before[10:50, 5:70], rng.integers(0, 255, (40, 65)))
    box = _gifcodec.changed_box(after, before, 80)
    changed = np.argwhere(after != before)
    assert box == (changed[:, 1].min(), changed[:, 0].min(), changed[:, 1].max() + 1, changed[:, 0].max() + 1)
    x0, y0, x1, y1 = box
    data = _gifcodec.lzw(after, before, 80, box, TRANSPARENT)
    expected = np.where(after == before, TRANSPARENT, after)[y0:y1, x0:x1]
    assert gif_lzw.decode(data, expected.size) == expected.tobytes()
    assert _gifcodec.changed_box(after, after, 80) is None


def _brute_force_nearest(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The documented rule, computed the slow way: the palette entry nearest (squared distance, ties to the lower
    index) to the centre of the pixel's 6-bit-per-channel bin, in doubled coordinates (centre = 8·bin + 3)."""
    centres = 8 * (pixels.reshape(-1, 3).astype(np.int64) >> 2) + 3
    doubled = 2 * palette.astype(np.int64)
    distance = ((centres[:, None, :] - doubled[None, :, :]) ** 2).sum(axis=-1)
    return distance.argmin(axis=1).astype(np.uint8).reshape(pixels.shape[:-1])


def test_mapping_is_the_nearest_palette_colour_of_each_pixels_bin():
    rng = np.random.default_rng(5)
    palette = rng.integers(0, 256, (255, 3)).astype(np.uint8)
    pixels = rng.integers(0, 256, (120, 160, 3)).astype(np.uint8)
    lut = np.full(1 << 18, 255, np.uint8)
    out = np.empty(pixels.shape[:2], np.uint8)
    _gifcodec.map_frame(pixels, palette.tobytes(), lut, out)
    np.testing.assert_array_equal(out, _brute_force_nearest(pixels, palette))
    # The cache, once filled, gives the same answer again.
    again = np.empty_like(out)
    _gifcodec.map_frame(pixels, palette.tobytes(), lut, again)
    np.testing.assert_array_equal(again, out)


def _animation() -> list[np.ndarray]:
    """Frames of palette colours: a noisy start, a moving block, a repeated frame, one changed pixel, a full
    change; so boxes of every kind are written."""
    rng = np.random.default_rng(11)
    h, w = 90, 120
    first = rng.integers(0, 255, (h, w)).astype(np.uint8)
    frames = [first]
    for k in range(6):
        nxt = frames[-1].copy()
        nxt[10 + 5 * k: 30 + 5 * k, 20 + 7 * k: 50 + 7 * k] = rng.integers(0, 255)
        frames.append(nxt)
    frames.append(frames[-1].copy())  # identical: written as one transparent pixel
    corner = frames[-1].copy()
    corner[h - 1, w - 1] = (corner[h - 1, w - 1] + 1) % 255
    frames.append(corner)
    frames.append(rng.integers(0, 255, (h, w)).astype(np.uint8))
    return frames


def _write_animation(path: Path, frames: list[np.ndarray], threads: int = 2) -> None:
    h, w = frames[0].shape
    with open(path, "wb") as fh, GifWriter(fh, w, h, PALETTE, [4] * len(frames), threads=threads) as gif:
        for indices in frames:
            gif.add(PALETTE[indices])


def test_every_decoder_shows_each_frame_of_a_differenced_animation(tmp_path):
    frames = _animation()
    path = tmp_path / "anim.gif"
    _write_animation(path, frames)
    expected = np.stack([PALETTE[f] for f in frames])

    js, info = _js_decode(path)
    np.testing.assert_array_equal(js, expected, err_msg="omggif")
    assert info["loop"] == 0  # forever
    boxes = [(f["x"], f["y"], f["width"], f["height"]) for f in info["frames"]]
    assert boxes[0] == (0, 0, 120, 90)
    assert boxes[1] == (20, 10, 30, 20)  # only the block that changed
    assert boxes[7] == (0, 0, 1, 1)  # the repeated frame
    assert boxes[8] == (119, 89, 1, 1)  # the one pixel that changed
    assert all(f["disposal"] == 1 and f["transparent_index"] == TRANSPARENT for f in info["frames"])

    np.testing.assert_array_equal(decode_frames(path), expected, err_msg="ffmpeg")
    with Image.open(path) as image:
        pillow = np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])
    np.testing.assert_array_equal(pillow, expected, err_msg="Pillow")


def test_the_bytes_do_not_depend_on_how_many_threads_encode(tmp_path):
    frames = _animation()
    outputs = []
    for threads in (0, 1, 2, 5):  # 0: on the caller's thread
        path = tmp_path / f"{threads}.gif"
        _write_animation(path, frames, threads=threads)
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2] == outputs[3]


def test_a_failed_animation_stops_its_threads(tmp_path):
    """Fails with frames still queued (one worker, frames big enough to take a few ms each): the writer must
    neither hang (a frame's task waits for the one before it) nor leave threads behind."""
    before = {t.ident for t in threading.enumerate()}
    noise = np.random.default_rng(1).integers(0, 255, (512, 512)).astype(np.uint8)
    with pytest.raises(RuntimeError, match="renderer failed"), open(tmp_path / "x.gif", "wb") as fh:
        with GifWriter(fh, 512, 512, PALETTE, [4] * 10, threads=1) as gif:
            for k in range(2):
                gif.add(PALETTE[np.roll(noise, k, axis=1)])
            raise RuntimeError("renderer failed")
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("gif")]
    assert leftover == []


@pytest.mark.parametrize("call, message", [
    (lambda: _gifcodec.lzw(np.zeros((4, 4), np.uint8), None, 4, (0, 0, 5, 4), 255), "box"),
    (lambda: _gifcodec.lzw(np.zeros((4, 4), np.uint8), None, 4, (2, 0, 2, 4), 255), "box"),
    (lambda: _gifcodec.lzw(np.zeros((4, 4), np.uint8), np.zeros((3, 4), np.uint8), 4, (0, 0, 4, 4), 255),
     "same size"),
    (lambda: _gifcodec.lzw(np.zeros((4, 4), np.uint8), None, 4, (0, 0, 4, 4), 256), "transparent"),
    (lambda: _gifcodec.map_frame(np.zeros((4, 4, 3), np.uint8), bytes(3), np.zeros(1 << 18, np.uint8),
                                 np.zeros((4, 5), np.uint8)), "three bytes"),
    (lambda: _gifcodec.map_frame(np.zeros((4, 4, 3), np.uint8), bytes(256 * 3), np.zeros(1 << 18, np.uint8),
                                 np.zeros((4, 4), np.uint8)), "palette"),
    (lambda: _gifcodec.map_frame(np.zeros((4, 4, 3), np.uint8), bytes(3), np.zeros(100, np.uint8),
                                 np.zeros((4, 4), np.uint8)), "lut"),
    (lambda: GifWriter(open("/dev/null", "wb"), 4, 4, np.zeros((256, 3), np.uint8), [4]), "palette"),
])
def test_bad_arguments_are_refused_with_the_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_frame_of_the_wrong_shape_is_refused(tmp_path):
    with open(tmp_path / "x.gif", "wb") as fh, GifWriter(fh, 8, 8, PALETTE, [4]) as gif:
        with pytest.raises(ValueError, match=r"8x8x3"):
            gif.add(np.zeros((8, 9, 3), np.uint8))
        gif.add(np.zeros((8, 8, 3), np.uint8))


def test_a_frame_changed_by_the_caller_after_add_is_written_as_it_was(tmp_path):
    """Frames are encoded later, on the pool; a caller reusing one buffer must not change what was added."""
    frames = _animation()
    expected, reused = tmp_path / "expected.gif", tmp_path / "reused.gif"
    _write_animation(expected, frames, threads=1)
    h, w = frames[0].shape
    buffer = np.empty((h, w, 3), np.uint8)
    with open(reused, "wb") as fh, GifWriter(fh, w, h, PALETTE, [4] * len(frames), threads=1) as gif:
        for indices in frames:
            buffer[:] = PALETTE[indices]
            gif.add(buffer)
            buffer[:] = 0  # before the pool has (likely) read it
    assert reused.read_bytes() == expected.read_bytes()
