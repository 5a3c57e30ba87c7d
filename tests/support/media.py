"""An independent decoder for the tests: the ffmpeg binary imageio-ffmpeg ships."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np


@dataclass(frozen=True)
class Decoded:
    frames: int
    width: int
    height: int
    codec: str
    pixel_format: str


def _run_decoder(path: Path) -> tuple[bytes, Decoded]:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, timeout=120, check=True,
    )
    match = re.search(r"Video: (\w+)[^,]*, (\w+)[^,]*, (\d{1,5})x(\d{1,5})", proc.stderr.decode(errors="replace"))
    assert match, proc.stderr.decode(errors="replace")[-2000:]
    codec, pixel_format, width, height = match.group(1), match.group(2), int(match.group(3)), int(match.group(4))
    frame_bytes = width * height * 3
    assert len(proc.stdout) % frame_bytes == 0
    return proc.stdout, Decoded(len(proc.stdout) // frame_bytes, width, height, codec, pixel_format)


def decode(path: Path) -> Decoded:
    """Decodes every frame (no frame dropping or duplication) and counts them."""
    return _run_decoder(path)[1]


def decode_frames(path: Path) -> np.ndarray:
    """Every frame as ffmpeg shows it (frames×height×width×3 RGB)."""
    data, info = _run_decoder(path)
    return np.frombuffer(data, dtype=np.uint8).reshape(info.frames, info.height, info.width, 3)


def probe_duration(path: Path) -> float:
    """The container's duration in seconds, as ffmpeg reads it."""
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          capture_output=True, timeout=60)
    match = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", proc.stderr.decode(errors="replace"))
    assert match, proc.stderr.decode(errors="replace")[-2000:]
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
