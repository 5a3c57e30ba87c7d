"""GIF encoders side by side on the same 100 frames of the default job (gen1, 512×512):

  1. ours: renderer.encoders.gif (one fitted palette, frame differencing, streaming; mapping and LZW in C with
     the GIL released, frames compressed on two threads), and the same on one thread (the caller's)
  2. Pillow's default `save_all` (a palette per frame)
  3. ffmpeg's two-pass palettegen / paletteuse (the binary imageio-ffmpeg ships)

The frames are rendered once into a raw RGB file; each encoder then runs in its own fresh child process that reads
them from that file, so wall time and peak memory are each encoder's own. Every GIF is decoded by ffmpeg (one
decoder for all three) and compared with the source frames (mean PSNR over frames).

Memory, as measured: `peak RSS` is the child's VmHWM minus its VmRSS just before encoding (so the interpreter and
libraries are left out); for ffmpeg it is the larger ru_maxrss of its two processes, whole (binary included).
`py peak` is tracemalloc's peak: Python and numpy allocations only (Pillow's C image memory is not traced).

Run: .venv/bin/python bench/encode.py [--frames 100] [--size 512] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "libs"), str(ROOT / "services")]


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _read_frame(fh, size: int) -> np.ndarray:
    data = fh.read(size * size * 3)
    return np.frombuffer(data, dtype=np.uint8).reshape(size, size, 3)


def _frame_at(raw: Path, size: int, index: int) -> np.ndarray:
    with open(raw, "rb") as fh:
        fh.seek(index * size * size * 3)
        return _read_frame(fh, size).copy()


# ---- workers: each runs in its own process and prints one JSON line ---------------------------------------------

def worker_ours(raw: Path, out: Path, n: int, size: int, fps: int, threads: int = 2) -> dict:
    import tracemalloc

    from renderer.encoders.gif import GifWriter, build_palette, frame_delays_cs, palette_sample_indices

    tracemalloc.start()
    base = _rss_kb("VmRSS")
    started = time.perf_counter()
    # In a render job these sample frames are rendered a second time; here they are read back from the file.
    palette = build_palette(_frame_at(raw, size, i) for i in palette_sample_indices(n))
    with open(out, "wb") as fh, open(raw, "rb") as src, GifWriter(fh, size, size, palette, frame_delays_cs(n, fps),
                                                                   threads=threads) as gif:
        for _ in range(n):
            gif.add(_read_frame(src, size))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_kb": _rss_kb("VmHWM") - base,
            "py_peak_kb": tracemalloc.get_traced_memory()[1] // 1024}


def worker_pillow(raw: Path, out: Path, n: int, size: int, fps: int) -> dict:
    import tracemalloc

    from PIL import Image

    tracemalloc.start()
    base = _rss_kb("VmRSS")
    started = time.perf_counter()
    with open(raw, "rb") as src:
        first = Image.frombytes("RGB", (size, size), src.read(size * size * 3))
        rest = (Image.frombytes("RGB", (size, size), src.read(size * size * 3)) for _ in range(n - 1))
        # Pillow's defaults; only the timing and the loop are given, as any animated GIF needs them.
        first.save(out, format="GIF", save_all=True, append_images=rest, duration=round(1000 / fps), loop=0)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_kb": _rss_kb("VmHWM") - base,
            "py_peak_kb": tracemalloc.get_traced_memory()[1] // 1024}


def worker_ffmpeg(raw: Path, out: Path, n: int, size: int, fps: int) -> dict:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    source = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}", "-r", str(fps), "-i", str(raw)]
    palette = out.with_suffix(".palette.png")
    passes = [
        [ffmpeg, "-v", "error", "-nostdin", "-y", *source, "-vf", "palettegen", str(palette)],
        [ffmpeg, "-v", "error", "-nostdin", "-y", *source, "-i", str(palette), "-lavfi", "paletteuse", "-loop", "0",
         str(out)],
    ]
    started = time.perf_counter()
    peak = 0
    for command in passes:
        proc = subprocess.Popen(command)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"ffmpeg failed: {command}")
        peak = max(peak, usage.ru_maxrss)
    seconds = time.perf_counter() - started
    palette.unlink(missing_ok=True)
    return {"seconds": seconds, "peak_rss_kb": peak, "py_peak_kb": None}


def worker_ours_one_thread(raw: Path, out: Path, n: int, size: int, fps: int) -> dict:
    return worker_ours(raw, out, n, size, fps, threads=0)


WORKERS = {"ours": worker_ours, "ours-1t": worker_ours_one_thread, "pillow": worker_pillow, "ffmpeg": worker_ffmpeg}
LABELS = {"ours": "ours (renderer.encoders.gif)", "ours-1t": "ours, on one thread",
          "pillow": "Pillow default save_all", "ffmpeg": "ffmpeg palettegen+paletteuse"}


# ---- the parent ---------------------------------------------------------------------------------------------------

def render_frames(raw: Path, n: int, size: int, seed: int) -> int:
    from mintpipe.core.scenes import validate_settings
    from renderer.scenes import SCENE_RENDERERS

    settings = validate_settings("gen1", {"seed": seed, "frames": n, "size": size})
    frame_at = SCENE_RENDERERS["gen1"](settings)
    with open(raw, "wb") as fh:
        for k in range(n):
            fh.write(frame_at(k).tobytes())
    return settings["fps"]


def mean_psnr(gif: Path, raw: Path, n: int, size: int) -> tuple[float, int]:
    """Mean PSNR (dB) of ffmpeg's decoding of `gif` against the source frames, and the decoded frame count."""
    import imageio_ffmpeg

    proc = subprocess.Popen(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(gif), "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE)
    psnrs, count = [], 0
    with open(raw, "rb") as src:
        while True:
            data = proc.stdout.read(size * size * 3)
            if len(data) < size * size * 3:
                break
            count += 1
            if count > n:
                continue
            a = np.frombuffer(data, dtype=np.uint8).astype(np.int32)
            b = np.frombuffer(src.read(size * size * 3), dtype=np.uint8).astype(np.int32)
            mse = float(np.mean((a - b) ** 2))
            psnrs.append(99.0 if mse == 0 else 10 * math.log10(255 ** 2 / mse))
    proc.wait()
    return sum(psnrs) / max(len(psnrs), 1), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=sorted(WORKERS), action="append", help="run only these encoders")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.raw, args.out, args.frames, args.size, args.fps)))
        return 0

    with tempfile.TemporaryDirectory(prefix="mintpipe-bench-") as tmp:
        raw = Path(tmp) / "frames.rgb"
        started = time.perf_counter()
        fps = render_frames(raw, args.frames, args.size, args.seed)
        print(f"rendered {args.frames} frames of gen1 seed {args.seed} at {args.size}x{args.size} "
              f"({raw.stat().st_size / 1e6:.1f} MB raw) in {time.perf_counter() - started:.2f}s; {fps} fps\n")
        results = {}
        for name in args.only or ["ours", "ours-1t", "pillow", "ffmpeg"]:
            out = Path(tmp) / f"{name}.gif"
            reply = subprocess.run(
                [sys.executable, __file__, "--worker", name, "--raw", str(raw), "--out", str(out),
                 "--frames", str(args.frames), "--size", str(args.size), "--fps", str(fps)],
                capture_output=True, text=True, check=True)
            result = json.loads(reply.stdout.strip().splitlines()[-1])
            result["bytes"] = out.stat().st_size
            result["psnr"], result["decoded"] = mean_psnr(out, raw, args.frames, args.size)
            results[name] = result
            py_peak = "-" if result["py_peak_kb"] is None else f"{result['py_peak_kb'] / 1024:.1f} MB"
            print(f"{LABELS[name]:<30} {result['seconds']:7.2f} s  {result['bytes'] / 1e6:6.2f} MB  "
                  f"{result['psnr']:5.2f} dB  peak RSS {result['peak_rss_kb'] / 1024:6.1f} MB  py peak {py_peak:>9}"
                  f"  ({result['decoded']} frames decoded)", flush=True)

        for mine in ("ours", "ours-1t"):
            if mine not in results:
                continue
            ours = results[mine]
            print(f"\n{LABELS[mine]}:")
            for name in ("pillow", "ffmpeg"):
                if name in results:
                    other = results[name]
                    print(f"  vs {LABELS[name]:<30} {other['seconds'] / ours['seconds']:6.1f}x faster, "
                          f"size {ours['bytes'] / other['bytes']:.2f}x, PSNR {ours['psnr'] - other['psnr']:+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
