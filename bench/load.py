"""N collectors at once against the whole system: `mintpipe up` with R renderer and P pinner replicas (on a queue
prefix, ports and data folder of its own), N default-size jobs (seeds 1..N, each from its own wallet) submitted
over HTTP at the same moment, as N browsers would. Prints one line per run:

  accepted        202s, and how long the last one took from the start
  pinned, failed  jobs that reached `pinned` / `failed` within the time bound (the rest are counted as lost)
  to pinned       p50 / p95 / max seconds from a job's submission to its `pinned` (the job record's updated_at)
  jobs/min        pinned jobs a minute, first submission to the last pin
  CPU s/job       each service's CPU (user + sys, its threads and waited children such as ffmpeg included) from
                  just before the submissions to the end, divided by the jobs pinned
  peak RSS        each service's VmHWM (the largest replica's, for renderer and pinner)
  ours / machine  our services' CPU as a share of all the machine's busy CPU during the run, and the 5-minute
                  load average at its end: on a shared machine, how much of it the run actually had

Progress is read from `GET /v1/jobs?stage=...` pages once a second (not per job), so watching costs the status
service little. The per-IP submission limit is raised for the run (every collector here is 127.0.0.1).

Run: .venv/bin/python bench/load.py [--jobs 100] [--renderers 2] [--pinners 1]
     .venv/bin/python bench/load.py --grid [--grid-renderers 1 2 4] [--grid-jobs 25 100 400] [--budget 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
from _system import launched  # bench/_system.py (this script's folder is on sys.path)

TICK = os.sysconf("SC_CLK_TCK")
SERVICES = ("status", "gateway", "renderer", "pinner")


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _service_of(pid: int) -> str | None:
    try:
        argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"-m" in argv:
        name = argv[argv.index(b"-m") + 1].decode()
        return name if name in SERVICES else None
    return None


def _cpu_and_peak(pid: int) -> tuple[float, int]:
    """CPU seconds (own and waited children's user + sys) and VmHWM in bytes."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK  # utime stime cutime cstime
        peak = 0
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
        return cpu, peak
    except OSError:
        return 0.0, 0


def snapshot(launcher_pid: int) -> dict[int, tuple[str, float, int]]:
    out = {}
    for pid in _children(launcher_pid):
        name = _service_of(pid)
        if name:
            out[pid] = (name, *_cpu_and_peak(pid))
    return out


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (not idle or waiting on I/O), all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _pages(client: httpx.AsyncClient, stage: str) -> list[dict]:
    jobs, cursor = [], None
    while True:
        reply = await client.get("/v1/jobs", params={"stage": stage, "limit": 100, **({"cursor": cursor} if cursor
                                                                                      else {})})
        reply.raise_for_status()
        body = reply.json()
        jobs += body["jobs"]
        cursor = body.get("next_cursor")
        if not cursor:
            return jobs


async def drive(base_url: str, jobs: int, bound: float) -> dict:
    limits = httpx.Limits(max_connections=jobs + 10, max_keepalive_connections=jobs + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        async def submit(seed: int) -> tuple[str | None, float, str]:
            wallet = "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
            sent = time.time()
            try:
                reply = await client.post("/v1/jobs", json={"settings": {"seed": seed}, "wallet": wallet},
                                          headers={"Idempotency-Key": f"load-{seed}-{uuid.uuid4().hex}"})
            except httpx.HTTPError as exc:
                return None, sent, f"{type(exc).__name__}: {exc}"
            if reply.status_code != 202:
                return None, sent, f"{reply.status_code} {reply.text[:200]}"
            return reply.json()["job_id"], sent, ""

        started = time.time()
        results = await asyncio.gather(*(submit(seed) for seed in range(1, jobs + 1)))
        accepted_in = time.time() - started
        submitted = {job_id: sent for job_id, sent, _ in results if job_id}
        refusals = [why for job_id, _, why in results if not job_id]
        pinned: dict[str, float] = {}
        failed: dict[str, str] = {}
        deadline = started + bound
        while len(pinned) + len(failed) < len(submitted) and time.time() < deadline:
            await asyncio.sleep(1.0)
            for job in await _pages(client, "pinned"):
                if job["job_id"] in submitted:
                    pinned[job["job_id"]] = _ts(job["updated_at"])
            for job in await _pages(client, "failed"):
                if job["job_id"] in submitted:
                    failed[job["job_id"]] = job.get("error") or ""
    latencies = sorted(pinned[j] - submitted[j] for j in pinned)
    span = (max(pinned.values()) - started) if pinned else float("nan")
    return {"accepted": len(submitted), "accepted_in": accepted_in, "refused": refusals, "pinned": len(pinned),
            "failed": failed, "lost": len(submitted) - len(pinned) - len(failed), "latencies": latencies,
            "span": span}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run(amqp_url: str, jobs: int, renderers: int, pinners: int, bound: float, threads: int | None) -> dict:
    env = {"STATUS_IP_RATE_PER_MINUTE": "100000", "STATUS_IP_BURST": "100000"}
    if threads:
        env["RENDERER_RENDER_THREADS"] = str(threads)
    started: dict = {}
    with launched(amqp_url, renderers=renderers, pinners=pinners, env=env, started=started) as base_url:
        pid = started["launcher"].pid
        time.sleep(1.0)  # the services settle after "up" (first connections, warm-up)
        before, busy = snapshot(pid), machine_busy()
        result = asyncio.run(drive(base_url, jobs, bound))
        after, busy = snapshot(pid), machine_busy() - busy
        result["loadavg"] = os.getloadavg()[1]
    cpu: dict[str, float] = {}
    peak: dict[str, int] = {}
    for p, (name, c, hwm) in after.items():
        cpu[name] = cpu.get(name, 0.0) + c - (before[p][1] if p in before else 0.0)
        peak[name] = max(peak.get(name, 0), hwm)
    result.update(jobs=jobs, renderers=renderers, pinners=pinners, cpu=cpu, peak=peak,
                  share=sum(cpu.values()) / busy if busy else float("nan"))
    return result


HEADER = ("| jobs | R | P | accepted | pinned | failed | lost | to pinned p50 / p95 / max | jobs/min | "
          "CPU s/job status / gateway / renderer / pinner | peak RSS MB status / gateway / renderer / pinner | "
          "ours / machine CPU, load avg |")


def line(r: dict) -> str:
    lat, per = r["latencies"], max(r["pinned"], 1)
    cpu = " / ".join(f"{r['cpu'].get(s, 0.0) / per:.3f}" for s in SERVICES)
    rss = " / ".join(f"{r['peak'].get(s, 0) / 1e6:.0f}" for s in SERVICES)
    rate = 60 * r["pinned"] / r["span"] if r["pinned"] else 0.0
    return (f"| {r['jobs']} | {r['renderers']} | {r['pinners']} | {r['accepted']} in {r['accepted_in']:.2f} s | "
            f"{r['pinned']} | {len(r['failed'])} | {r['lost']} | {_pct(lat, 0.5):.1f} / {_pct(lat, 0.95):.1f} / "
            f"{_pct(lat, 1.0):.1f} s | {rate:.1f} | {cpu} | {rss} | {100 * r['share']:.0f} %, {r['loadavg']:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--renderers", type=int, default=2)
    parser.add_argument("--pinners", type=int, default=1)
    parser.add_argument("--render-threads", type=int, help="RENDERER_RENDER_THREADS (default: the service's)")
    parser.add_argument("--grid", action="store_true", help="R in --grid-renderers × N in --grid-jobs")
    parser.add_argument("--grid-renderers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--grid-jobs", type=int, nargs="+", default=[25, 100, 400])
    parser.add_argument("--bound", type=float, default=0.0,
                        help="seconds a run may take after its submissions (default: 60 + 3 s a job)")
    parser.add_argument("--budget", type=float, default=1800.0, help="the grid stops starting runs after this")
    parser.add_argument("--amqp-url", default=os.environ.get("MINTPIPE_AMQP_URL", "amqp://guest:guest@127.0.0.1/"))
    args = parser.parse_args()
    plan = ([(n, r) for n in args.grid_jobs for r in args.grid_renderers] if args.grid
            else [(args.jobs, args.renderers)])
    print(f"{os.cpu_count()} cores; per-service CPU includes waited children (the renderers' ffmpeg); "
          f"render threads: {args.render_threads or 'the service default'}\n")
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    t0 = time.monotonic()
    for jobs, renderers in plan:
        if time.monotonic() - t0 > args.budget:
            print(f"(budget of {args.budget:.0f} s spent: {jobs} jobs x {renderers} renderers not run)")
            continue
        result = run(args.amqp_url, jobs, renderers, args.pinners, args.bound or 60 + 3 * jobs, args.render_threads)
        print(line(result), flush=True)
        if result["refused"]:
            print(f"  refused: {result['refused'][:3]}")
        if result["failed"]:
            print(f"  failed: {list(result['failed'].values())[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
