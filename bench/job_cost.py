"""Core-seconds of each part of one default job (gen1 seed 7: 100 frames of 512×512 at 25 fps), today's code beside
a baseline commit's, in one run, with the issue's targets.

Each tree runs in a fresh child process (`--tree`), and inside it each part runs alone on the same frames so its
CPU time (user + sys, all threads, child processes included) is its own:
  render     the 100 frames, on the threads render_job uses, and (where the scene takes a thread count) again on
             one thread (they are also kept in a list, unmetered, so the encoders can be timed on their own)
  palette    the sample frames rendered again, and the palette fitted to them
  GIF        GifWriter over the 100 frames, on render_job's GIF_THREADS (its thread pool included)
  MP4        Mp4Writer: this process's writes to the pipe plus the ffmpeg child's CPU
  PNG        the preview as render_job writes it
  pin        the pin stage's own work for the job's files: sha256 check, CIDs, the local store, metadata JSON,
             the pin ledger (no AMQP: that is in bench/load.py's per-service figures); after a warm-up job, so
             imports and first connections are not counted
  status     the job store applying the job's ~17 progress events, and the in-process fan-out (no AMQP)
  render_job the whole of render_job as the renderer runs it (parts overlap on the two cores there): CPU and wall
Then the outputs' quality: sizes, mean PSNR of the GIF and the MP4 (decoded by ffmpeg) against the rendered
frames, and whether the PNG holds the same pixels as its frame.

The baseline tree is `git archive <ref>` of libs/ and services/ with its C extensions compiled (or copied when
their source is unchanged). Run: .venv/bin/python bench/job_cost.py [--before REF] [--repeat 3]
Medians over --repeat runs; each run alternates the trees, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "50a1a28"  # the last commit before this benchmark's work on the renderer (renderer 1.4.0)
SETTINGS = {"seed": 7}
TARGETS = {"render": None, "palette": None, "GIF": None, "MP4": None, "PNG": None,
           "render_job CPU": 1.0, "render_job wall": 0.5, "pin": None, "status": None, "pin + status": 0.1}
PARTS = ("render", "render, 1 thread", "palette", "GIF", "MP4", "PNG", "pin", "status")


# ---- inside the child --------------------------------------------------------------------------------------------

def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class Meter:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def __call__(self, name: str):
        meter = self

        class _Span:
            def __enter__(self):
                self.c, self.w = _cpu(), time.perf_counter()

            def __exit__(self, *_):
                meter.cpu[name] = meter.cpu.get(name, 0.0) + _cpu() - self.c
                meter.wall[name] = meter.wall.get(name, 0.0) + time.perf_counter() - self.w

        return _Span()


def _psnr(a, b) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.int32) - b.astype(np.int32)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _decode(path: Path, size: int):
    import imageio_ffmpeg
    import numpy as np

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, size, size, 3)


def _pin_and_status(out: Path, work: Path, meter: Meter) -> None:
    """The pin stage's and the status service's per-job work, through their own classes, without a broker."""
    from mintpipe.core.cid import cid_of_json
    from mintpipe.core.stages import PIN_END, PIN_START, RENDER_END, RENDER_START, band
    from mintpipe.objects.artifacts import sha256_file, write_atomic
    from mintpipe.objects.ipfs import LocalIpfsStore
    from mintpipe.pin_ledger import PinLedger
    from mintpipe.v1 import broker_pb2, jobs_pb2
    from pinner.backends import LocalBackend
    from pinner.metadata import build_metadata
    from pinner.pinning import PinService
    from status.jobs.bus import JobBus
    from status.jobs.service import apply_and_announce
    from status.jobs.store import JobStore

    files = {"image": ("image.gif", "image/gif"), "animation": ("animation.mp4", "video/mp4"),
             "preview": ("preview.png", "image/png")}

    async def pin(pins: PinService) -> str:
        job = broker_pb2.PinJob(job_id="ab" * 16, scene="gen1", settings_json=json.dumps(SETTINGS),
                                wallet="0x" + "11" * 20, renderer_version="bench", settings_hash="00" * 32)
        cids = {}
        for kind, (name, content_type) in files.items():
            digest = sha256_file(out / name)
            job.artifacts.add(kind=kind, key=name, content_type=content_type, size=(out / name).stat().st_size,
                              sha256=digest)
            cids[kind] = await pins.pin(out / name, content_type, name, job.job_id, {"sha256": digest})
        cid, body = cid_of_json(build_metadata(job, cids))
        write_atomic(work / "metadata.json", body)
        meta = await pins.pin(work / "metadata.json", "application/json", "metadata.json", job.job_id,
                              {"sha256": hashlib.sha256(body).hexdigest()})
        done = pins.ledger.record_job_pinned(job.job_id, job.settings_hash)
        if inspect.isawaitable(done):  # the ledger is async since it also runs on PostgreSQL
            await done
        if inspect.iscoroutinefunction(getattr(pins.ledger, "close", None)):
            await pins.ledger.close()
        return meta

    async def status(store: JobStore, bus: JobBus, token_cid: str) -> None:
        record, _ = await store.reserve("bench-key", "h" * 64, "0x" + "11" * 20, "gen1", json.dumps(SETTINGS))
        job_id = record.job_id
        events = [(jobs_pb2.STAGE_RENDERING, RENDER_START)]
        events += [(jobs_pb2.STAGE_RENDERING, band(RENDER_START, RENDER_END - 1, p)) for p in range(10, 101, 10)]
        events += [(jobs_pb2.STAGE_RENDERED, RENDER_END), (jobs_pb2.STAGE_PINNING, PIN_START)]
        events += [(jobs_pb2.STAGE_PINNING, band(PIN_START, PIN_END, 100 * k / 4)) for k in range(1, 5)]
        for stage, progress in events:
            await apply_and_announce(store, bus, broker_pb2.JobEvent(job_id=job_id, stage=stage, progress=progress))
        await apply_and_announce(store, bus, broker_pb2.JobEvent(
            job_id=job_id, stage=jobs_pb2.STAGE_PINNED, progress=100, token_uri=f"ipfs://{token_cid}",
            assets=jobs_pb2.JobAssets(metadata=token_cid)))
        final = await store.get(job_id)
        assert final is not None and final.stage == jobs_pb2.STAGE_PINNED

    async def both() -> None:
        # The services' long-lived parts (the local store, the pin ledger, the job store and its schema) are
        # made before the meters start: a running pinner or status service has them already, so they are not
        # part of a job's cost (until commit 34eddea these were made inside, i.e. counted with every job).
        local = LocalIpfsStore(work / "ipfs")
        pins = PinService(LocalBackend(local), PinLedger(work / "ledger.sqlite"), local, rate_limit=100,
                          rate_window=60.0, monthly_pins=None)
        store, bus = JobStore(work / "jobs.sqlite"), JobBus()
        await store.open()
        try:
            with meter("pin"):
                token = await pin(pins)
            with meter("status"):
                await status(store, bus, token)
        finally:
            await store.close()

    asyncio.run(both())


def child(tree: Path, result_path: Path) -> None:
    sys.path[:0] = [str(tree / "libs"), str(tree / "services")]
    import numpy as np
    from PIL import Image

    from mintpipe.core.scenes import validate_settings
    from renderer import render as render_module
    from renderer.encoders.gif import GifWriter, build_palette, frame_delays_cs, palette_sample_indices
    from renderer.encoders.mp4 import Mp4Writer
    from renderer.heap import steady_heap
    from renderer.scenes import SCENE_RENDERERS

    assert Path(render_module.__file__).is_relative_to(tree), render_module.__file__
    steady_heap()
    settings = validate_settings("gen1", dict(SETTINGS))
    n, size, fps = settings["frames"], settings["size"], settings["fps"]
    meter = Meter()
    with tempfile.TemporaryDirectory(prefix="mintpipe-bench-cost-") as tmp:
        tmp = Path(tmp)
        frame_at = SCENE_RENDERERS["gen1"](settings)
        frame_at(0)  # warm-up: first-call costs (imports, tables, thread pools) are not per job
        # Kept in a list for the encoders below, but outside the meter: growing the heap by 78 MB faults in
        # ~19k fresh pages, which render_job never does (it holds a few frames). Measured that way it cost
        # 0.1 core-s more than the render itself, and looked like two threads' overhead.
        frames = [frame_at(k) for k in range(n)]
        with meter("render"):
            for k in range(n):
                frame_at(k)
        if "threads" in inspect.signature(SCENE_RENDERERS["gen1"]).parameters:
            one = SCENE_RENDERERS["gen1"](settings, 1)
            one(0)
            with meter("render, 1 thread"):
                for k in range(n):
                    one(k)
        with meter("palette"):
            palette = build_palette(frame_at(i) for i in palette_sample_indices(n, render_module.PALETTE_SAMPLES))
        with meter("GIF"):
            buffer = io.BytesIO()
            # The pool render_job gives the GIF (GIF_THREADS since 1.6.0; GifWriter's default 2 before).
            gif_threads = getattr(render_module, "GIF_THREADS", 2)
            with GifWriter(buffer, size, size, palette, frame_delays_cs(n, fps), gif_threads) as gif:
                for frame in frames:
                    gif.add(frame)
        with meter("MP4"):
            mp4 = Mp4Writer(tmp / "mp4.mp4", size, size, fps)
            for frame in frames:
                mp4.add(frame)
            mp4.close()
        preview = frames[n // 3]
        with meter("PNG"):
            if hasattr(render_module, "write_preview"):  # after the change: its own function
                render_module.write_preview(preview, tmp / "preview.png")
            else:  # renderer 1.4.0, as render_job wrote it
                Image.fromarray(preview).save(tmp / "preview.png", format="PNG", optimize=False, compress_level=9)
        del frames, buffer
        out = tmp / "job"
        with meter("render_job"):
            render_module.render_job("gen1", dict(SETTINGS), out)
        # Once to warm up (imports, first connections: not per job), then measured on fresh stores.
        (tmp / "warm").mkdir()
        (tmp / "cold").mkdir()
        _pin_and_status(out, tmp / "warm", Meter())
        _pin_and_status(out, tmp / "cold", meter)

        decoded_gif = _decode(out / "image.gif", size)
        decoded_mp4 = _decode(out / "animation.mp4", size)
        gif_psnr, mp4_psnr = [], []
        for k in range(n):
            frame = frame_at(k)
            gif_psnr.append(_psnr(decoded_gif[k], frame))
            mp4_psnr.append(_psnr(decoded_mp4[k], frame))
        with Image.open(out / "preview.png") as im:
            png_same = bool(np.array_equal(np.asarray(im), frame_at(n // 3)))
        quality = {
            "version": render_module.RENDERER_VERSION,
            "gif_bytes": (out / "image.gif").stat().st_size, "gif_psnr": statistics.fmean(gif_psnr),
            "mp4_bytes": (out / "animation.mp4").stat().st_size, "mp4_psnr": statistics.fmean(mp4_psnr),
            "png_bytes": (out / "preview.png").stat().st_size, "png_same_pixels": png_same,
            "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
                       for p in sorted(out.glob("*.*")) if not p.name.startswith(".")},
        }
    result_path.write_text(json.dumps({"cpu": meter.cpu, "wall": meter.wall, "quality": quality}))


# ---- the parent -----------------------------------------------------------------------------------------------

def build_tree(ref: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref, "libs", "services"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for source in dest.glob("services/**/*.c"):
        target = source.with_name(source.stem + suffix)
        ours = ROOT / source.relative_to(dest)
        built = ours.with_name(ours.stem + suffix)
        if ours.is_file() and built.is_file() and ours.read_bytes() == source.read_bytes():
            shutil.copy2(built, target)
        else:
            include = sysconfig.get_paths()["include"]
            subprocess.run(["cc", "-O2", "-ffp-contract=off", "-shared", "-fPIC", f"-I{include}", str(source),
                            "-o", str(target)], check=True)
    return dest


def run_child(tree: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as fh:
        subprocess.run([sys.executable, __file__, "--child", str(tree), fh.name], check=True, cwd=ROOT)
        return json.loads(Path(fh.name).read_text())


def _fmt(value: float | None, unit: str = "s") -> str:
    return "" if value is None else f"{value:.3f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=BASELINE, help="git ref of the baseline tree (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("TREE", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="mintpipe-bench-tree-") as tmp:
        trees = {"before": build_tree(args.before, Path(tmp)), "now": ROOT}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for i in range(args.repeat):
            for name, tree in trees.items():
                runs[name].append(run_child(tree))
                print(f"run {i + 1}/{args.repeat} {name}: done", file=sys.stderr)

    def median(name: str, kind: str, part: str) -> float | None:
        values = [r[kind][part] for r in runs[name] if part in r[kind]]
        return statistics.median(values) if values else None

    rows = []
    for part in PARTS:
        rows.append((part, median("before", "cpu", part), median("now", "cpu", part), TARGETS.get(part)))
    for name in ("before", "now"):
        for r in runs[name]:
            r["cpu"]["pin + status"] = r["cpu"]["pin"] + r["cpu"]["status"]
    rows.append(("pin + status", median("before", "cpu", "pin + status"), median("now", "cpu", "pin + status"),
                 TARGETS["pin + status"]))
    for name in ("before", "now"):
        for r in runs[name]:
            r["cpu"]["sum of render parts"] = sum(r["cpu"][p] for p in ("render", "palette", "GIF", "MP4", "PNG"))
    rows.append(("sum of render parts", median("before", "cpu", "sum of render parts"),
                 median("now", "cpu", "sum of render parts"), 1.0))
    rows.append(("render_job CPU", median("before", "cpu", "render_job"), median("now", "cpu", "render_job"),
                 TARGETS["render_job CPU"]))
    rows.append(("render_job wall", median("before", "wall", "render_job"), median("now", "wall", "render_job"),
                 TARGETS["render_job wall"]))
    print(f"\nOne default job (gen1 seed 7, 100 frames 512x512), median of {args.repeat} runs, CPU = user+sys of "
          f"all threads and child processes. before = {args.before}, now = working tree.\n")
    print("| part | before | now | now/before | target |")
    print("|---|---|---|---|---|")
    for part, before, now, target in rows:
        ratio = f"{now / before:.2f}x" if before and now else ""
        print(f"| {part} | {_fmt(before)} | {_fmt(now)} | {ratio} | {'<= ' + _fmt(target) if target else ''} |")
    print("\n(render_job's parts overlap on two cores; the parts above are each measured alone.)\n")
    print("| output | before | now |")
    print("|---|---|---|")
    qb, qn = runs["before"][0]["quality"], runs["now"][0]["quality"]
    print(f"| renderer version | {qb['version']} | {qn['version']} |")
    for key, label, scale, unit in (("gif_bytes", "GIF size", 1e6, "MB"), ("gif_psnr", "GIF mean PSNR", 1, "dB"),
                                    ("mp4_bytes", "MP4 size", 1e6, "MB"), ("mp4_psnr", "MP4 mean PSNR", 1, "dB"),
                                    ("png_bytes", "PNG size", 1e6, "MB")):
        print(f"| {label} | {qb[key] / scale:.3f} {unit} | {qn[key] / scale:.3f} {unit} |")
    print(f"| PNG = its frame's pixels | {qb['png_same_pixels']} | {qn['png_same_pixels']} |")
    same = all(r["quality"]["sha256"] == runs["now"][0]["quality"]["sha256"] for r in runs["now"])
    print(f"| outputs identical over the runs | "
          f"{all(r['quality']['sha256'] == qb['sha256'] for r in runs['before'])} | {same} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
