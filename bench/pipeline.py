"""Pipeline overhead: the whole system's end-to-end throughput with N renderer replicas, side by side in one run
with the same jobs rendered bare (`render_job` in N plain processes: no broker, no HTTP, no pinning, no store).

Every variant makes the same K default jobs (gen1, 100 frames of 512×512, seeds 1..K):
  bare ×N      N processes share the K renders; wall time from the start to the last file written
  pipeline ×N  `mintpipe up --renderers N --pinners 1` on its own queue prefix, ports and data folder (pinning to
               the local store); K submissions over HTTP at once, wall time from the first submission to the
               last job pinned (metadata uploaded, token URI announced)
Throughput is jobs per minute. "vs N × bare ×1" is what the SPEC asks to be close to 1; "vs bare ×N" is the
overhead alone on this machine (one job already keeps ~1.6 of its 2 cores busy: the render, and ffmpeg's x264).

Run: .venv/bin/python bench/pipeline.py [--jobs 8] [--replicas 1 2] [--amqp-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from _system import launched  # bench/_system.py (this script's folder is on sys.path)

WALLET = "0x000000000000000000000000000000000000dEaD"


# ---- bare ------------------------------------------------------------------------------------------------------

def bare_worker(seeds: list[int], out: Path) -> None:
    from renderer.render import render_job

    for seed in seeds:
        render_job("gen1", {"seed": seed}, out / str(seed))


def run_bare(replicas: int, seeds: list[int]) -> dict:
    with tempfile.TemporaryDirectory(prefix="mintpipe-bench-bare-") as tmp:
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, __file__, "--bare-worker", tmp,
                                   "--seeds", *map(str, seeds[i::replicas])]) for i in range(replicas)]
        for proc in procs:
            if proc.wait() != 0:
                raise SystemExit("a bare render failed")
        return {"seconds": time.perf_counter() - started, "latencies": []}


# ---- the whole system ------------------------------------------------------------------------------------------

def run_pipeline(replicas: int, seeds: list[int], amqp_url: str) -> dict:
    with launched(amqp_url, renderers=replicas, pinners=1) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        started = time.perf_counter()
        submitted: dict[str, float] = {}
        for seed in seeds:
            reply = client.post("/v1/jobs", json={"settings": {"seed": seed}, "wallet": WALLET},
                                headers={"Idempotency-Key": f"bench-{seed}-{uuid.uuid4().hex}"})
            if reply.status_code != 202:
                raise SystemExit(f"submission refused: {reply.status_code} {reply.text}")
            submitted[reply.json()["job_id"]] = time.perf_counter()
        latencies, pending = [], set(submitted)
        while pending:
            time.sleep(0.05)
            for job_id in list(pending):
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["stage"] == "pinned":
                    pending.discard(job_id)
                    latencies.append(time.perf_counter() - submitted[job_id])
                elif job["stage"] in ("failed", "cancelled"):
                    raise SystemExit(f"job {job_id} {job['stage']}: {job.get('error')}")
        return {"seconds": time.perf_counter() - started, "latencies": latencies}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--amqp-url", default=os.environ.get("MINTPIPE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--bare-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        bare_worker(args.seeds, args.bare_worker)
        return 0

    seeds = list(range(1, args.jobs + 1))
    print(f"{args.jobs} default jobs (gen1, 100 frames 512x512) on {os.cpu_count()} cores\n")
    results: dict[tuple[str, int], dict] = {}
    for n in sorted({1, *args.replicas}):  # bare x1 is every ratio's base
        for kind in ("bare", "pipeline") if n in args.replicas else ("bare",):
            r = results[(kind, n)] = run_bare(n, seeds) if kind == "bare" else run_pipeline(n, seeds, args.amqp_url)
            r["per_minute"] = 60 * args.jobs / r["seconds"]
            latency = ""
            if r["latencies"]:
                latency = (f"  submit->pinned median {statistics.median(r['latencies']):5.2f} s, "
                           f"max {max(r['latencies']):5.2f} s")
            print(f"{kind + ' x' + str(n):<14} {r['seconds']:6.2f} s  {r['per_minute']:5.1f} jobs/min{latency}",
                  flush=True)
    print()
    one = results[("bare", 1)]["per_minute"]
    for n in args.replicas:
        pipe = results[("pipeline", n)]["per_minute"]
        bare_n = results[("bare", n)]["per_minute"]
        print(f"pipeline x{n}: {pipe / (n * one):.2f}x of {n} x bare x1, {pipe / bare_n:.2f}x of bare x{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
