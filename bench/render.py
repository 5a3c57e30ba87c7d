"""A whole default render job (gen1, 100 frames, 512×512: render + GIF + MP4 + PNG), timed, with its peak memory,
side by side with the obvious way to write it (every frame kept in a list, then Pillow's `save_all` for the GIF and
imageio-ffmpeg's writer for the MP4).

Each variant runs in its own fresh child process. Reported per variant:
  wall        seconds from settings to the three files
  peak RSS    the child's VmHWM (whole process: interpreter, numpy, Pillow and the job's own memory)
  job memory  VmHWM minus the VmRSS just before the job (what the job itself added)
  ffmpeg      the largest child process's peak RSS (the ffmpeg encoder: a separate process, shown apart)
For scale: 100 raw 512×512 RGB frames are 78.6 MB.

Run: .venv/bin/python bench/render.py [--seed 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "libs"), str(ROOT / "services")]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker_ours(settings: dict, out: Path) -> None:
    from renderer.render import render_job

    render_job("gen1", settings, out)


def worker_list(settings: dict, out: Path) -> None:
    import imageio_ffmpeg
    import numpy as np
    from PIL import Image

    from mintpipe.core.scenes import validate_settings
    from renderer.scenes import SCENE_RENDERERS

    settings = validate_settings("gen1", settings)
    n, size, fps = settings["frames"], settings["size"], settings["fps"]
    frame_at = SCENE_RENDERERS["gen1"](settings)
    frames = [frame_at(k) for k in range(n)]
    images = [Image.fromarray(f) for f in frames]
    images[0].save(out / "image.gif", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    writer = imageio_ffmpeg.write_frames(str(out / "animation.mp4"), (size, size), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", output_params=["-movflags", "+faststart"])
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    images[n // 3].save(out / "preview.png")


WORKERS = {"ours": worker_ours, "list": worker_list}
LABELS = {"ours": "ours (streaming render_job)", "list": "frames in a list + save_all"}


def run_worker(name: str, settings: dict, out: Path) -> dict:
    # Warm the imports first so that "job memory" is the job's, not the libraries'.
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401

    import renderer.render  # noqa: F401

    before = _status_kb("VmRSS")
    started = time.perf_counter()
    WORKERS[name](settings, out)
    seconds = time.perf_counter() - started
    peak = _status_kb("VmHWM")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    return {"seconds": seconds, "peak_kb": peak, "job_kb": peak - before, "ffmpeg_kb": children, "sizes": sizes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the best time and peak are kept")
    parser.add_argument("--only", choices=sorted(WORKERS), action="append")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = {"seed": args.seed}
    if args.worker:
        print(json.dumps(run_worker(args.worker, settings, args.out)))
        return 0

    print(f"default job: gen1 seed {args.seed}, 100 frames 512x512 (100 raw frames: 78.6 MB); "
          f"best of {args.repeat}, each run in a fresh process\n")
    results = {}
    for name in args.only or ["ours", "list"]:
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="mintpipe-bench-") as tmp:
                reply = subprocess.run([sys.executable, __file__, "--worker", name, "--out", tmp],
                                       capture_output=True, text=True, check=True, env={**os.environ})
                runs.append(json.loads(reply.stdout.strip().splitlines()[-1]))
        best = min(runs, key=lambda r: r["seconds"])
        best["peak_kb"] = min(r["peak_kb"] for r in runs)
        best["job_kb"] = min(r["job_kb"] for r in runs)
        results[name] = best
        sizes = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in best["sizes"].items())
        print(f"{LABELS[name]:<30} {best['seconds']:6.2f} s  peak RSS {best['peak_kb'] / 1024:6.1f} MB  "
              f"job memory {best['job_kb'] / 1024:6.1f} MB  ffmpeg {best['ffmpeg_kb'] / 1024:5.1f} MB   {sizes}",
              flush=True)
    if len(results) == 2:
        ours, other = results["ours"], results["list"]
        print(f"\nours vs list: {other['seconds'] / ours['seconds']:.1f}x faster, "
              f"peak RSS {ours['peak_kb'] / other['peak_kb']:.2f}x, job memory {ours['job_kb'] / other['job_kb']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
