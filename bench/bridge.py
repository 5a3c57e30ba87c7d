"""The bridge under many clients at once: how long accepting a submission takes (POST /v1/jobs until its 202:
validation, the idempotency key, the gateway over gRPC, the job stored, the render message confirmed by
RabbitMQ), and what it costs: CPU milliseconds per submission in the status process (bridge + job store) and
the gateway, read from /proc, which the shared machine's load does not inflate the way it does latency.

Two kinds of load, both from wrk (a C load generator; `apt-get install wrk`) with bench/wrk_submit.lua:
  capacity   100 connections sending back to back: the most the bridge accepts per second
  steady     300 clients, each pausing ~1.5 s between submissions, i.e. ~200 a second offered in all: how long
             each waits while hundreds are connected and the bridge is below capacity
The system runs as `mintpipe up` starts it, with two changes so that the bridge is what is measured: the
renderer consumes another prefix (accepted jobs wait in the queue instead of taking the cores), and the per-IP
and per-wallet limits are raised (every client here is 127.0.0.1). wrk shares the 2 cores.

Side by side: `--baseline DIR` runs another checkout too (e.g. `git archive main | tar -x -C DIR`, plus the
renderer's built .so files) and alternates the two, load by load and round by round (A B A B ...), so both
see the same machine; the load average is printed with every figure.

Run: .venv/bin/python bench/bridge.py [--seconds 8] [--rounds 3] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

from _system import ROOT, cpu_seconds, launched, service_pids  # bench/_system.py (this folder is on sys.path)

SCRIPT = Path(__file__).resolve().parent / "wrk_submit.lua"
# (label, connections, pause between one client's requests in ms; 0: back to back)
LOADS = [("capacity", 100, 0), ("steady ~200/s", 300, 1500)]
MEASURED = ("status", "gateway")


def wrk(base_url: str, path: str, connections: int, pause_ms: int, seconds: int) -> dict:
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(SCRIPT),
         base_url, "--", uuid.uuid4().hex[:8], path, str(pause_ms)],
        capture_output=True, text=True, timeout=seconds + 60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["per_second"] = result["requests"] / result["seconds"]
    return result


def measured(base_url: str, pids: dict[str, int], connections: int, pause: int, seconds: int) -> dict:
    before = {name: cpu_seconds(pids[name]) for name in MEASURED}
    r = wrk(base_url, "/v1/jobs", connections, pause, seconds)
    for name in MEASURED:
        r[f"{name}_ms"] = (cpu_seconds(pids[name]) - before[name]) * 1000 / max(1, r["requests"])
    r["load"] = os.getloadavg()[0]
    return r


def line(label: str, system: str, r: dict) -> str:
    return (f"{label:<14} {system:<9} {r['per_second']:7.1f}/s  p50 {r['p50_us'] / 1000:7.1f} ms  "
            f"p99 {r['p99_us'] / 1000:7.1f} ms  max {r['max_us'] / 1000:7.1f} ms  CPU/submit status "
            f"{r['status_ms']:.2f} ms + gateway {r['gateway_ms']:.2f} ms  load {r['load']:.1f}  "
            f"statuses {r['statuses']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="length of each load")
    parser.add_argument("--rounds", type=int, default=1, help="each load this many times per system")
    parser.add_argument("--baseline", type=Path, help="another checkout to run side by side (A/B)")
    parser.add_argument("--amqp-url", default=os.environ.get("MINTPIPE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench/bridge.py drives the load with wrk: apt-get install wrk", file=sys.stderr)
        return 2
    env = {"RENDERER_BROKER_PREFIX": f"bench-parked-{uuid.uuid4().hex[:8]}",
           "STATUS_IP_RATE_PER_MINUTE": "1000000", "STATUS_IP_BURST": "100000",
           "GATEWAY_WALLET_RATE_PER_MINUTE": "1000000", "GATEWAY_WALLET_BURST": "100000"}
    roots = {"this": ROOT} if args.baseline is None else {"baseline": args.baseline.resolve(), "this": ROOT}
    results: dict[tuple[str, str], list[dict]] = {}
    with contextlib.ExitStack() as stack:
        systems = {}
        for name, root in roots.items():
            started: dict = {}
            base_url = stack.enter_context(launched(args.amqp_url, env=env, started=started, root=root))
            systems[name] = (base_url, service_pids(started["launcher"].pid))
            wrk(base_url, "/v1/jobs", 10, 0, 2)  # warm-up: connections, the store, the gRPC channel
        print(f"the bridge, {args.seconds} s per load, {args.rounds} round(s), on {os.cpu_count()} cores "
              f"(wrk on the same cores; load average {os.getloadavg()[0]:.1f} at start)\n")
        for label, connections, pause in LOADS:
            for _ in range(args.rounds):
                for name, (base_url, pids) in systems.items():
                    r = measured(base_url, pids, connections, pause, args.seconds)
                    results.setdefault((label, name), []).append(r)
                    print(line(label, name, r), flush=True)
    print("\nmedians over the rounds")
    for label, _, _ in LOADS:
        for name in roots:
            runs = results[(label, name)]
            med = {k: statistics.median(r[k] for r in runs)
                   for k in ("per_second", "p50_us", "p99_us", "status_ms", "gateway_ms", "load")}
            print(f"{label:<14} {name:<9} {med['per_second']:7.1f}/s  p50 {med['p50_us'] / 1000:7.1f} ms  "
                  f"p99 {med['p99_us'] / 1000:7.1f} ms  CPU/submit {med['status_ms'] + med['gateway_ms']:.2f} ms "
                  f"(status {med['status_ms']:.2f} + gateway {med['gateway_ms']:.2f})  load {med['load']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
