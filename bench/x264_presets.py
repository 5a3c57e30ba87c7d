"""x264 presets, tunings and CRFs on the default job's frames, side by side in one run: the ffmpeg child's CPU
(user + sys), the MP4's size and its mean PSNR against the rendered frames (decoded back to RGB by ffmpeg, the
same measure as bench/job_cost.py). The frames go in as the renderer sends them (yuv420p from
renderer.encoders._yuv420); the command line is renderer.encoders.mp4's own (ffmpeg_command), with only the preset,
tune, CRF and x264 parameters replaced (its fixed ones, threads=1 and rc-lookahead=10, always come first).

Run: .venv/bin/python bench/x264_presets.py [--seed 7] [--repeat 2] [--frames N]
         [--configs medium/20 veryfast/21.5/animation/subme=1:me=dia:partitions=none:aq-mode=0 ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "libs"), str(ROOT / "services")]

import imageio_ffmpeg  # noqa: E402
import numpy as np  # noqa: E402

from mintpipe.core.scenes import validate_settings  # noqa: E402
from renderer.encoders import _yuv420  # noqa: E402
from renderer.encoders.mp4 import ffmpeg_command  # noqa: E402
from renderer.scenes import SCENE_RENDERERS  # noqa: E402

DEFAULT_CONFIGS = ["medium/20", "veryfast/20/animation/subme=1:me=dia",
                   "veryfast/20/animation/subme=1:me=dia:partitions=none",
                   "veryfast/21.5/animation/subme=1:me=dia:partitions=none:aq-mode=0",
                   "veryfast/21.5/animation/subme=1:me=dia:partitions=none:aq-mode=0:bframes=3",
                   "veryfast/21/psnr/subme=1:me=dia:partitions=none", "superfast/20//mbtree=1"]


def parse(config: str) -> tuple[str, str, str, str]:
    """preset/crf[/tune[/x264 params joined by ':']]"""
    preset, crf, tune, params = (config.split("/") + ["", ""])[:4]
    return preset, crf, tune, params


def encode(frames: list[np.ndarray], path: Path, preset: str, crf: str, tune: str, params: str) -> float:
    size = frames[0].shape[0]
    command = ffmpeg_command(path, size, size, 25, preset=preset, tune=tune, crf=crf, params=params)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(command, stdin=subprocess.PIPE)
    planes = np.empty(size * size * 3 // 2, dtype=np.uint8)
    for frame in frames:
        _yuv420.rgb_to_yuv420(frame, size, size, planes)
        proc.stdin.write(planes.tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit(f"ffmpeg failed for {preset} {crf} {tune}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def psnr(path: Path, frames: list[np.ndarray]) -> float:
    size = frames[0].shape[0]
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    decoded = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size, size, 3)
    values = []
    for shown, frame in zip(decoded, frames, strict=True):
        mse = float(np.mean((shown.astype(np.int32) - frame.astype(np.int32)) ** 2))
        values.append(10 * np.log10(255.0 ** 2 / mse))
    return statistics.fmean(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames (e.g. to compare asm=)")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="preset/crf[/tune[/x264 params]]")
    args = parser.parse_args()
    settings = validate_settings("gen1", {"seed": args.seed})
    frame_at = SCENE_RENDERERS["gen1"](settings)
    frames = [frame_at(k) for k in range(args.frames or settings["frames"])]
    results = {c: [] for c in args.configs}
    with tempfile.TemporaryDirectory(prefix="mintpipe-bench-x264-") as tmp:
        for _ in range(args.repeat):
            for config in args.configs:  # interleaved, so each config sees the same machine load
                results[config].append(encode(frames, Path(tmp) / "a.mp4", *parse(config)))
        base = args.configs[0]
        rows = []
        for config in args.configs:
            path = Path(tmp) / "a.mp4"
            encode(frames, path, *parse(config))
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            rows.append((config, statistics.median(results[config]), path.stat().st_size, psnr(path, frames),
                         digest))
    _, base_cpu, base_size, base_psnr, _ = rows[0]
    print(f"gen1 seed {args.seed}, {len(frames)} frames 512x512; CPU = ffmpeg's user+sys, median of {args.repeat}; "
          f"vs {base}; load average {os.getloadavg()[0]:.1f}\n")
    print("| preset/crf/tune/params | CPU | vs base | size | vs base | mean PSNR | vs base | sha256 |")
    print("|---|---|---|---|---|---|---|---|")
    for config, cpu, size, value, digest in rows:
        print(f"| {config} | {cpu:.3f} s | {cpu / base_cpu:.2f}x | {size / 1e6:.3f} MB | {size / base_size:.2f}x "
              f"| {value:.2f} dB | {value - base_psnr:+.2f} dB | {digest} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
