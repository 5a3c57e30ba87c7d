"""What the operators' dashboard costs the status service: CPU per overview refresh with 10,000 jobs in the store,
side by side in one run with the same service's cheap routes and with an empty store.

A real status service (`python -m status`, on a queue prefix and data folder of its own) serves a job store
filled beforehand: N jobs created over the last two hours, most pinned, some failed or still queued, each with
its stage history (5 rows a pinned job), so the last hour's charts, percentiles and rates have real rows to
read. The bench asks each route R times over HTTP, one request at a time (as a dashboard polls), and reads the
service's own CPU time (utime + stime in /proc) before and after: CPU per request, whatever the client costs.

Run: .venv/bin/python bench/admin_overview.py [--jobs 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from _system import ROOT, drop_prefixes, free_port  # bench/_system.py (this script's folder is on sys.path)

from mintpipe.v1 import jobs_pb2
from status.jobs.store import JobStore

TOKEN = "bench-admin-token"
WALLETS = [f"0x{i:040x}" for i in range(1, 500)]


async def make_schema(path: Path) -> None:
    store = JobStore(path)
    await store.open()  # the tables come with the store's migrations
    await store.close()


def fill(path: Path, jobs: int) -> None:
    """`jobs` jobs over the last two hours: 90 % pinned, 5 % failed, 5 % queued (published), with history."""
    asyncio.run(make_schema(path))
    rng = random.Random(7)
    now = time.time()
    job_rows, history = [], []
    for _ in range(jobs):
        job_id = uuid.uuid4().hex
        created = now - rng.uniform(0, 7200)
        roll = rng.random()
        stage = jobs_pb2.STAGE_PINNED if roll < 0.9 else jobs_pb2.STAGE_FAILED if roll < 0.95 else jobs_pb2.STAGE_QUEUED
        at = created
        if stage != jobs_pb2.STAGE_QUEUED:
            for s, source, replica in ((jobs_pb2.STAGE_RENDERING, "renderer", "renderer-0"),
                                       (jobs_pb2.STAGE_RENDERED, "renderer", "renderer-0"),
                                       (jobs_pb2.STAGE_PINNING, "pinner", "pinner-0"),
                                       (stage, "pinner", "pinner-0")):
                at += rng.uniform(0.2, 4)
                history.append((job_id, s, at, source, replica, "" if s != jobs_pb2.STAGE_FAILED else "bench",
                                at - created if s == jobs_pb2.STAGE_PINNED else None))
        assets = '{"image": "bafkrei' + job_id + '"}' if stage == jobs_pb2.STAGE_PINNED else "{}"
        error = "bench" if stage == jobs_pb2.STAGE_FAILED else ""
        job_rows.append((job_id, rng.choice(WALLETS), "gen1", '{"seed": 1}', stage,
                         100 if stage == jobs_pb2.STAGE_PINNED else 0, error,
                         assets, "ipfs://bafkrei" + job_id if stage == jobs_pb2.STAGE_PINNED else "", 1, created, at))
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO jobs (job_id, wallet, scene, settings_json, stage, progress, error, assets_json, "
                       "token_uri, published, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", job_rows)
        db.executemany("INSERT INTO stage_history (job_id, stage, at, source, replica, error, took) "
                       "VALUES (?,?,?,?,?,?,?)", history)
    db.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(base: str, pid: int, path: str, requests: int) -> tuple[float, float]:
    """(CPU ms per request in the status process, wall ms per request)."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        for _ in range(5):  # warm: imports, caches, the broker channel
            client.get(path).raise_for_status()
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        for _ in range(requests):
            client.get(path).raise_for_status()
        return ((cpu_seconds(pid) - cpu) * 1000 / requests, (time.perf_counter() - wall) * 1000 / requests)


def run_status(amqp: str, data: Path, db: Path, prefix: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MINTPIPE_AMQP_URL": amqp, "MINTPIPE_BROKER_PREFIX": prefix, "MINTPIPE_DATA_DIR": str(data),
           "STATUS_DB_PATH": str(db), "STATUS_HTTP_PORT": str(port), "STATUS_GRPC_PORT": str(free_port()),
           "MINTPIPE_ADMIN_TOKEN": TOKEN, "MINTPIPE_LOG_LEVEL": "WARNING",
           # Every refresh computed afresh (open dashboards normally share one for 2 s): the cost of one refresh.
           "STATUS_OVERVIEW_CACHE_SECONDS": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "libs"), str(ROOT / "services")])}
    process = subprocess.Popen([sys.executable, "-m", "status"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the status service did not start")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--amqp", default=os.environ.get("MINTPIPE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args()
    routes = [("overview", "/v1/admin/overview"), ("job search by wallet", f"/v1/admin/jobs?q={WALLETS[3]}"),
              ("public job list", "/v1/jobs?limit=20"), ("healthz", "/healthz")]
    results: dict[tuple[str, str], tuple[float, float]] = {}
    prefixes = []
    with tempfile.TemporaryDirectory(prefix="mintpipe-bench-overview-") as tmp:
        for label, jobs in ((f"{args.jobs:,} jobs", args.jobs), ("empty store", 0)):
            data = Path(tmp) / label.replace(" ", "_").replace(",", "")
            data.mkdir()
            db = data / "jobs.sqlite3"
            fill(db, jobs)
            prefix = f"benchov{uuid.uuid4().hex[:6]}"
            prefixes.append(prefix)
            process, base = run_status(args.amqp, data, db, prefix)
            try:
                for name, path in routes:
                    results[(label, name)] = measure(base, process.pid, path, args.requests)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    drop_prefixes(args.amqp, *prefixes)

    full = f"{args.jobs:,} jobs"
    print(f"status service CPU per request ({args.requests} requests each, one at a time)")
    print(f"{'route':<24}{'store':<14}{'CPU ms':>9}{'wall ms':>9}{'× healthz CPU':>15}")
    for label in (full, "empty store"):
        floor = results[(label, "healthz")][0]
        for name, _ in routes:
            cpu, wall = results[(label, name)]
            print(f"{name:<24}{label:<14}{cpu:>9.2f}{wall:>9.2f}{cpu / floor if floor else float('nan'):>15.1f}")
    over_full, over_empty = results[(full, "overview")][0], results[("empty store", "overview")][0]
    print(f"overview with {full} costs {over_full / over_empty:.1f}× the overview of an empty store; "
          f"at one refresh every 3 s per open dashboard that is {over_full / 3000 * 100:.1f} % of a core each")


if __name__ == "__main__":
    main()
