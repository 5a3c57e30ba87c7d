"""H.264 MP4 through the ffmpeg binary imageio-ffmpeg ships, fed raw frames through a pipe as they are made
(ffmpeg encodes in its own process, on the other core, while the next frames render)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np


class Mp4Writer:
    def __init__(self, path: Path, width: int, height: int, fps: int) -> None:
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
            # Chosen by bench/x264_presets.py on the default job (CPU of the encoder, size, mean PSNR against the
            # rendered frames), against `medium` CRF 20 (1.43 core-s, 0.499 MB, 37.85 dB): `veryfast` with
            # tune=animation (fewer psy tricks, more B-frames: flat gradients) and the cheapest motion search
            # (diamond, subpixel level 1) took 0.46-0.55 core-s for 0.595 MB (1.19×) at 37.97 dB. `superfast`
            # costs about as much once macroblock-tree is back on, and without it the file doubles.
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "animation", "-crf", "20", "-profile:v", "high",
            "-pix_fmt", "yuv420p",
            # One thread and bit-exact flags: the same frames give the same bytes on any machine. A 10-frame
            # rate-control lookahead (measured under `medium`: the encoder's peak RSS 73 MB instead of 107 MB).
            "-threads", "1", "-x264-params", "threads=1:sliced-threads=0:rc-lookahead=10:subme=1:me=dia",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
            "-movflags", "+faststart", "-f", "mp4", str(path),
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.cpu_seconds = 0.0  # the encoder process's user + system CPU, known once closed

    def add(self, frame: np.ndarray) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(memoryview(np.ascontiguousarray(frame)))  # no copy of a contiguous frame

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        stderr = self.process.stderr.read() if self.process.stderr else b""
        # wait4 rather than wait: the same reaping, plus this encoder's own CPU (renders run side by side in one
        # process, so the process-wide children times cannot tell whose ffmpeg spent what).
        _pid, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        if self.process.returncode != 0:
            raise RuntimeError(f"ffmpeg failed: {stderr.decode(errors='replace')[-500:]}")

    def abort(self) -> None:
        self.process.kill()
        self.process.wait()
