"""H.264 MP4 through the ffmpeg binary imageio-ffmpeg ships, fed yuv420p frames through a pipe as they are made
(ffmpeg encodes in its own process while the next frames render).

The RGB -> yuv420p conversion is ours (`_yuv420.c`, integer arithmetic): swscale did it in the ffmpeg process for
0.1-0.2 core-s a default job, and rgb24 put twice the bytes through the pipe. Conversion and pipe writes run on a
feeder thread of this writer's own (both release the GIL), so the caller is not held up by a full pipe.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import subprocess
import threading
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from renderer.encoders import _yuv420

# x264, chosen with bench/x264_presets.py on the default job (100 frames 512², yuv420p input; CPU of the encoder
# process, size, mean PSNR against the rendered frames, minimum of 5 alternated runs on this shared machine):
#   renderer 1.5.0   veryfast, tune=animation, crf 20, subme=1, me=dia          0.46 core-s  0.598 MB  37.98 dB
#   + partitions=none (no i4x4/i8x8/p8x8/b8x8 search in P and B frames)         0.34         0.623     37.64
#   + aq-mode=0, crf 21.5 (AQ's bits went to flat gradients; PSNR favours none) 0.34-0.37    0.608     37.74
# against the baseline (`medium` crf 20: 0.499 MB, 37.85 dB) that is 1.22x the size (limit 1.25x) and
# -0.11 dB (limit -0.3). bframes=3, rc-lookahead=6, no-chroma-me, weightp=0 and no-8x8dct were within the noise
# or worse; subme=0 grew the file 11 %.
# Renderer 1.7.0: mbtree=0, crf 23.25 (0.599 MB, 37.69 dB; encoder CPU 0.42 core-s against 0.43, median of 5
# alternated, load average 2.2). The macroblock tree's propagate step is float code whose SIMD versions x264 does
# not hold to its C (approximate reciprocals; checkasm compares it with a tolerance): on the default job's first 20
# frames the AVX-512, AVX2, SSE2 and C paths gave four different files. Without it the AVX-512, AVX2, AVX, SSE4.2
# and SSSE3 paths give one file (tests/unit/test_mp4_determinism.py). Left open: x86 CPUs without SSSE3 (SSE2 or
# C paths only) give another file (the same between them; likely x264's SSSE3-only 9-mode intra search, which skips
# none of the C path's shortcuts), and another architecture runs another ffmpeg build. Forcing asm=SSE2 everywhere
# closes the first at 1.16x the encoder CPU, not taken. Each imageio-ffmpeg wheel carries its own x264, so it is
# pinned in pyproject.toml.
X264_PRESET, X264_TUNE, X264_CRF = "veryfast", "animation", "23.25"
X264_PARAMS = "subme=1:me=dia:partitions=none:aq-mode=0:mbtree=0"
# A FIXED count of x264 threads, never the machine's: x264 is deterministic for a given count and CPU path (see
# above), so the bytes do not depend on the renderer's own thread count. One: two frame threads cost 0.04-0.05
# core-s more a job and did not shorten render_job's wall time (3 alternated pairs, load average 2.6-2.9), the
# render and GIF threads already keep the other core busy.
X264_THREADS = 1
PIPE_BYTES = 1 << 20  # the pipe's buffer: a 512² yuv420p frame (384 KB) in one write, not six 64 KB wake-ups
QUEUE_FRAMES = 4  # frames waiting for the feeder thread (a few MB) before add() blocks


def ffmpeg_command(path: Path, width: int, height: int, fps: int, preset: str = X264_PRESET,
                   tune: str = X264_TUNE, crf: str = X264_CRF, params: str = X264_PARAMS) -> list[str]:
    """The encoder's command line (bench/x264_presets.py builds its variants here too, so they cannot drift)."""
    return [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-preset", preset, *(["-tune", tune] if tune else []), "-crf", crf,
        "-profile:v", "high", "-pix_fmt", "yuv420p", "-threads", str(X264_THREADS),
        # Frame threads only (sliced threads would change the stream with the count, and cost bits), and
        # a 10-frame rate-control lookahead (measured under `medium`: the encoder's peak RSS 73 MB, not 107).
        "-x264-params", ":".join(filter(None, [f"threads={X264_THREADS}:sliced-threads=0:rc-lookahead=10", params])),
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
        "-movflags", "+faststart", "-f", "mp4", str(path),
    ]


class Mp4Writer:
    def __init__(self, path: Path, width: int, height: int, fps: int) -> None:
        self.width, self.height = width, height
        self.cpu_seconds = 0.0  # the encoder process's user + system CPU, known once closed
        self._frames: queue.Queue[np.ndarray | None] = queue.Queue(QUEUE_FRAMES)
        self._failure: BaseException | None = None
        self.process = subprocess.Popen(ffmpeg_command(path, width, height, fps), stdin=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        try:
            assert self.process.stdin is not None
            try:
                fcntl.fcntl(self.process.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except (OSError, AttributeError):  # over /proc/sys/fs/pipe-max-size, or not Linux: the default will do
                pass
            self._feeder = threading.Thread(target=self._feed, name="mp4-feed", daemon=True)
            self._feeder.start()
        except BaseException:  # no thread to feed it: the encoder must not outlive this constructor
            self.process.kill()
            self.process.wait()
            self._close_pipes()
            raise

    def _feed(self) -> None:
        try:
            stdin = self.process.stdin
            assert stdin is not None
            planes = np.empty(self.width * self.height * 3 // 2, dtype=np.uint8)
            while (frame := self._frames.get()) is not None:
                _yuv420.rgb_to_yuv420(frame, self.width, self.height, planes)
                stdin.write(memoryview(planes))
        except BaseException as exc:  # a dead ffmpeg (broken pipe): add() raises it; frames still drain
            self._failure = exc
            while self._frames.get() is not None:
                pass

    def add(self, frame: np.ndarray) -> None:
        """Queues a frame (height×width×3 uint8, C-contiguous). The frame is read later, on the feeder thread:
        the caller must not write to it afterwards (render_job's frames are each a new array)."""
        if self._failure is not None:  # found by the feeder at its last write: stop the render now, not at close
            raise RuntimeError(f"ffmpeg stopped taking frames (exit status {self.process.poll()}): "
                               f"{self._failure!r}") from self._failure
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8 or not frame.flags.c_contiguous:
            raise ValueError(f"frame must be a C-contiguous {self.height}x{self.width}x3 uint8 array")
        self._frames.put(frame)

    def close(self) -> None:
        self._frames.put(None)
        self._feeder.join()
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        stderr = self.process.stderr.read() if self.process.stderr else b""
        # wait4 rather than wait: the same reaping, plus this encoder's own CPU (renders run side by side in one
        # process, so the process-wide children times cannot tell whose ffmpeg spent what).
        _pid, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        if self.process.returncode != 0 or self._failure is not None:
            raise RuntimeError(f"ffmpeg failed ({self._failure!r}): {stderr.decode(errors='replace')[-500:]}")

    def abort(self) -> None:
        """Stops the encoder and the feeder; never blocks on the queue (the feeder may have stopped taking)."""
        self.process.kill()  # the feeder's next write fails, then it drains to the marker below
        if self._feeder.is_alive():
            while True:
                try:
                    self._frames.put_nowait(None)
                    break
                except queue.Full:  # frames it has not taken: dropped here, so the marker always fits
                    with contextlib.suppress(queue.Empty):
                        self._frames.get_nowait()
            self._feeder.join()
        self.process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a broken pipe's unwritten buffer
                    pipe.close()
