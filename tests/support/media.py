"""An independent decoder for the tests: the ffmpeg binary imageio-ffmpeg ships."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg


@dataclass(frozen=True)
class Decoded:
    frames: int
    width: int
    height: int
    codec: str


def decode(path: Path) -> Decoded:
    """Decodes every frame (no frame dropping or duplication) and counts them."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, timeout=120, check=True,
    )
    match = re.search(r"Video: (\w+).*?, (\d{2,5})x(\d{2,5})", proc.stderr.decode(errors="replace"))
    assert match, proc.stderr.decode(errors="replace")[-2000:]
    codec, width, height = match.group(1), int(match.group(2)), int(match.group(3))
    frame_bytes = width * height * 3
    assert len(proc.stdout) % frame_bytes == 0
    return Decoded(len(proc.stdout) // frame_bytes, width, height, codec)
