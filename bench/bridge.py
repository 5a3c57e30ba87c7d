"""The bridge under many clients at once: how long accepting a submission takes (POST /v1/jobs until its 202:
validation, the idempotency key, the gateway over gRPC, the job stored, the render message confirmed by
RabbitMQ), side by side in one run with the bridge's cheapest route (GET /healthz, the HTTP stack's own floor).

Two kinds of load, both from wrk (a C load generator; `apt-get install wrk`) with bench/wrk_submit.lua:
  capacity   100 connections sending back to back: the most the bridge accepts per second
  steady     300 clients, each pausing ~3 s (or ~1.5 s) between submissions, i.e. ~100 (~200) a second offered
             in all: how long each waits while hundreds are connected and the bridge is below capacity
The system runs as `mintpipe up` starts it, with two changes so that the bridge is what is measured: the
renderer consumes another prefix (accepted jobs wait in the queue instead of taking the cores), and the per-IP
and per-wallet limits are raised (every client here is 127.0.0.1). wrk shares the 2 cores.

Run: .venv/bin/python bench/bridge.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from _system import launched  # bench/_system.py (this script's folder is on sys.path)

SCRIPT = Path(__file__).resolve().parent / "wrk_submit.lua"
# (label, connections, pause between one client's requests in ms; 0: back to back)
LOADS = [("capacity", 100, 0), ("steady ~100/s", 300, 3000), ("steady ~200/s", 300, 1500)]


def wrk(base_url: str, path: str, connections: int, pause_ms: int, seconds: int) -> dict:
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(SCRIPT),
         base_url, "--", uuid.uuid4().hex[:8], path, str(pause_ms)],
        capture_output=True, text=True, timeout=seconds + 60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["per_second"] = result["requests"] / result["seconds"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="length of each load")
    parser.add_argument("--amqp-url", default=os.environ.get("MINTPIPE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench/bridge.py drives the load with wrk: apt-get install wrk", file=sys.stderr)
        return 2
    env = {"RENDERER_BROKER_PREFIX": f"bench-parked-{uuid.uuid4().hex[:8]}",
           "STATUS_IP_RATE_PER_MINUTE": "1000000", "STATUS_IP_BURST": "100000",
           "GATEWAY_WALLET_RATE_PER_MINUTE": "1000000", "GATEWAY_WALLET_BURST": "100000"}
    results = {}
    with launched(args.amqp_url, env=env) as base_url:
        wrk(base_url, "/v1/jobs", 10, 0, 2)  # warm-up: connections, the store, the gRPC channel
        print(f"the bridge, {args.seconds} s per load, on {os.cpu_count()} cores (wrk on the same cores)\n")
        for label, connections, pause in LOADS:
            for route, path in (("healthz", "/healthz"), ("submit", "/v1/jobs")):
                r = results[(label, route)] = wrk(base_url, path, connections, pause, args.seconds)
                print(f"{label:<14} {route:<8} {connections:4d} clients  {r['per_second']:7.1f}/s  "
                      f"p50 {r['p50_us'] / 1000:7.1f} ms  p95 {r['p95_us'] / 1000:7.1f} ms  "
                      f"p99 {r['p99_us'] / 1000:7.1f} ms  max {r['max_us'] / 1000:7.1f} ms  "
                      f"statuses {r['statuses']}  socket errors {r['socket_errors']}", flush=True)
    print()
    for label, _, _ in LOADS:
        submit, floor = results[(label, "submit")], results[(label, "healthz")]
        print(f"{label:<14} a submission: p50 {submit['p50_us'] / floor['p50_us']:.1f}x and p99 "
              f"{submit['p99_us'] / floor['p99_us']:.1f}x the /healthz ones, "
              f"throughput {submit['per_second'] / floor['per_second']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
