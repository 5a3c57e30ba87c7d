"""The renderer's output, read back by independent decoders (ffmpeg from imageio-ffmpeg, and Pillow's GIF reader)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mintpipe.core.scenes import SettingsError, validate_settings
from renderer.encoders.gif import frame_delays_cs
from renderer.render import render_job
from renderer.scenes import SCENE_RENDERERS
from tests.support.media import decode, decode_frames, probe_duration

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], list[tuple[int, str]]]:
    """The default job (100 frames, 512×512, 25 fps), rendered once for the module."""
    out = tmp_path_factory.mktemp("default-job")
    progress: list[tuple[int, str]] = []
    assets = render_job("gen1", {"seed": 7}, out, lambda p, phase: progress.append((p, phase)))
    return {a.kind: a.path for a in assets}, progress


def test_the_gif_has_every_frame_at_full_size_and_plays_at_its_frame_rate(default_job):
    paths, _ = default_job
    gif = decode(paths["image"])
    assert (gif.codec, gif.frames, gif.width, gif.height) == ("gif", 100, 512, 512)
    assert paths["image"].read_bytes()[:6] == b"GIF89a"
    assert probe_duration(paths["image"]) == pytest.approx(4.0, abs=0.02)  # 100 frames at 25 fps


def test_the_gif_shows_every_rendered_frame_faithfully(default_job):
    """256 colours for a whole clip of soft gradients: each frame, as ffmpeg decodes it (transparent pixels
    showing the frame before), stays close to what was rendered. Pillow's per-frame default reaches 37.9 dB
    on this clip."""
    paths, _ = default_job
    decoded = decode_frames(paths["image"])
    frame_at = SCENE_RENDERERS["gen1"](validate_settings("gen1", {"seed": 7}))
    psnr = []
    for k, shown in enumerate(decoded):
        mse = np.mean((shown.astype(np.int32) - frame_at(k)) ** 2)
        psnr.append(10 * np.log10(255 ** 2 / mse))
    assert len(psnr) == 100
    assert min(psnr) > 37.0 and np.mean(psnr) > 38.5, (min(psnr), np.mean(psnr))


def test_the_gif_loops_forever_with_honest_delays(default_job):
    paths, _ = default_job
    with Image.open(paths["image"]) as im:
        assert im.info["loop"] == 0  # NETSCAPE2.0 loop count 0: forever
        durations = []
        for index in range(im.n_frames):
            im.seek(index)
            durations.append(im.info["duration"])
    assert durations == [40] * 100


def test_the_mp4_is_h264_yuv420p_faststart_with_every_frame(default_job):
    paths, _ = default_job
    mp4 = decode(paths["animation"])
    assert (mp4.codec, mp4.frames, mp4.width, mp4.height) == ("h264", 100, 512, 512)
    assert mp4.pixel_format == "yuv420p"
    assert probe_duration(paths["animation"]) == pytest.approx(4.0, abs=0.05)
    data = paths["animation"].read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "+faststart puts the index before the media"


def test_the_preview_is_a_frame_of_the_clip(default_job):
    paths, _ = default_job
    with Image.open(paths["preview"]) as im:
        assert (im.format, im.size, im.mode) == ("PNG", (512, 512), "RGB")
        preview = np.asarray(im)
    frame = SCENE_RENDERERS["gen1"](validate_settings("gen1", {"seed": 7}))(100 // 3)
    assert np.array_equal(preview, frame)


def test_progress_is_monotonic_and_reported_at_least_every_ten_frames(default_job):
    _, progress = default_job
    values = [p for p, _ in progress]
    assert values == sorted(values) and values[-1] == 100
    assert sum(1 for _, phase in progress if phase == "render") >= 10


def test_thirty_fps_is_played_at_thirty_fps():
    delays = frame_delays_cs(90, 30)
    assert sum(delays) == 300 and set(delays) == {3, 4}  # 3 s exactly, never drifting by more than 1 cs
    running = np.cumsum(delays)
    assert all(abs(running[k] - 100 * (k + 1) / 30) < 1 for k in range(90))


def test_thirty_fps_clip_lasts_what_it_should(tmp_path):
    assets = {a.kind: a.path for a in render_job("gen1", {"seed": 3, "frames": 30, "size": 128, "fps": 30}, tmp_path)}
    assert probe_duration(assets["image"]) == pytest.approx(1.0, abs=0.02)
    assert probe_duration(assets["animation"]) == pytest.approx(1.0, abs=0.05)


def test_the_loop_is_seamless():
    frame_at = SCENE_RENDERERS["gen1"](validate_settings("gen1", {"seed": 11, "frames": 40, "size": 128}))
    frames = [frame_at(k).astype(np.int16) for k in range(40)]
    assert np.array_equal(frame_at(40), frames[0]), "frame N is frame 0 again"
    steps = [np.abs(frames[k + 1] - frames[k]).mean() for k in range(39)]
    wrap = np.abs(frames[0] - frames[-1]).mean()
    assert 0 < wrap <= 1.5 * max(steps), "the last frame flows into the first like any other step"


def test_different_seeds_give_different_images(tmp_path):
    a = render_job("gen1", {"seed": 1, "frames": 10, "size": 128}, tmp_path / "a")
    b = render_job("gen1", {"seed": 2, "frames": 10, "size": 128}, tmp_path / "b")
    for left, right in zip(a, b, strict=True):
        assert left.sha256 != right.sha256, left.kind
    with Image.open(a[2].path) as pa, Image.open(b[2].path) as pb:
        assert np.abs(np.asarray(pa, dtype=np.int16) - np.asarray(pb, dtype=np.int16)).mean() > 5


def test_the_same_settings_give_identical_bytes_in_two_processes(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"seed": 42, "palette": "lagoon", "frames": 24, "size": 192, "fps": 30}))
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        subprocess.run([sys.executable, "-m", "launcher", "render", str(settings), "--out", str(out)],
                       check=True, capture_output=True, cwd=ROOT, timeout=120)
    for name in ("image.gif", "animation.mp4", "preview.png"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


@pytest.mark.parametrize(("settings", "field"), [
    ({"frames": 5}, "frames"),
    ({"size": 4096}, "size"),
    ({"size": 301}, "size"),
    ({"palette": "neon-pink"}, "palette"),
    ({"speed": 0}, "speed"),
    ({"seed": "seven"}, "seed"),
    ({"colour": "red"}, "colour"),
])
def test_settings_outside_the_schema_are_refused_before_rendering(tmp_path, settings, field):
    out = tmp_path / "out"
    with pytest.raises(SettingsError) as caught:
        render_job("gen1", settings, out)
    assert caught.value.field == f"settings.{field}"
    assert not out.exists(), "nothing is written for refused settings"


def test_the_render_command_names_the_bad_field_and_writes_nothing(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"seed": 1, "frames": 1000}))
    proc = subprocess.run([sys.executable, "-m", "launcher", "render", str(settings), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "frames" in proc.stderr
    assert not (tmp_path / "o").exists()
