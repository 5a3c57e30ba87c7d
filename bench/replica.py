"""A real renderer replica's memory through one default job (gen1, 100 frames, 512×512), side by side in one run:
the replica as the container image runs it (`pip install .`, no dev extras), and as this dev venv runs it (the
test extras bring `rich`, which structlog then imports: ~9 MB more).

Each variant starts `python -m renderer` against the local RabbitMQ (a queue prefix of its own, deleted after),
publishes one render job, and waits for the pin job the replica hands on. While the job runs it samples, every
5 ms, the replica's /proc status and that of its children (the ffmpeg MP4 encoder). Reported per variant:
  at rest      the replica's RSS once it is consuming, before the job
  peak         its VmHWM after the job (interpreter, libraries and the job)
  job          peak minus at rest: what the job itself added
  anon         its anonymous memory after the job, and the most seen while it ran (heap and stacks: what each
               further replica costs; the rest of its RSS is library code mapped from files, shared by every
               replica on the host)
  ffmpeg       the largest VmHWM seen of the ffmpeg child (its own process; 36 MB of it is the static binary)
For scale: 100 raw 512×512 RGB frames are 78.6 MB.

Run: .venv/bin/python bench/replica.py [--amqp-url URL] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "libs"), str(ROOT / "services")]

from mintpipe.core.scenes import validate_settings  # noqa: E402
from mintpipe.messaging.broker import Broker, Topology, delete_topology  # noqa: E402
from mintpipe.v1 import broker_pb2  # noqa: E402

# The image installs no dev extras; here `rich` is hidden from the replica to run it as the image would.
AS_IN_IMAGE = "import runpy, sys; sys.modules['rich'] = None; runpy.run_module('renderer', run_name='__main__')"
VARIANTS = {"replica as in the image": ["-c", AS_IN_IMAGE], "replica in this dev venv": ["-m", "renderer"]}


def _kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return out


async def _ready(queue, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        declared = await queue.channel.declare_queue(queue.name, passive=True, robust=False)
        if declared.declaration_result.consumer_count:
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the replica did not start consuming within a minute")


async def measure(url: str, argv: list[str], settings: dict) -> dict:
    topo = Topology(f"bench-replica-{uuid.uuid4().hex[:8]}")
    broker = Broker(url, topo, "bench")
    await broker.connect(attempts=3)
    channel = await broker.channel(10)
    render_q = await channel.get_queue(topo.render_queue, ensure=False)
    pin_q = await channel.get_queue(topo.pin_queue, ensure=False)
    with tempfile.TemporaryDirectory(prefix="mintpipe-bench-") as data:
        env = {**os.environ, "MINTPIPE_AMQP_URL": url, "MINTPIPE_BROKER_PREFIX": topo.prefix,
               "MINTPIPE_DATA_DIR": data, "RENDERER_HEALTH_PORT": "0", "MINTPIPE_LOG_LEVEL": "WARNING"}
        replica = await asyncio.create_subprocess_exec(sys.executable, *argv, env=env, cwd=ROOT,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await _ready(render_q)
            await asyncio.sleep(1.0)  # let start-up settle
            rest = _kb(replica.pid, "VmRSS")
            job = broker_pb2.RenderJob(job_id=uuid.uuid4().hex, scene="gen1", settings_json=json.dumps(settings),
                                       wallet="0x000000000000000000000000000000000000dEaD")
            started = time.perf_counter()
            await broker.publish(topo.jobs_exchange, "render", job)
            ffmpeg = anon_peak = 0
            while (await pin_q.get(no_ack=True, fail=False)) is None:
                anon_peak = max(anon_peak, _kb(replica.pid, "RssAnon"))
                for child in _children(replica.pid):
                    ffmpeg = max(ffmpeg, _kb(child, "VmHWM"))
                await asyncio.sleep(0.005)
            seconds = time.perf_counter() - started
            peak, anon = _kb(replica.pid, "VmHWM"), _kb(replica.pid, "RssAnon")
            anon_peak = max(anon_peak, anon)
        finally:
            replica.send_signal(signal.SIGTERM)
            await asyncio.wait_for(replica.wait(), 30)
            await delete_topology(channel, topo)
            await broker.close()
    return {"seconds": seconds, "rest": rest, "peak": peak, "job": peak - rest, "anon": anon,
            "anon_peak": anon_peak, "ffmpeg": ffmpeg}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amqp-url", default=os.environ.get("MINTPIPE_AMQP_URL",
                                                             "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    settings = validate_settings("gen1", {"seed": args.seed})
    print(f"one default job (gen1 seed {args.seed}, 100 frames 512x512; 100 raw frames: 78.6 MB) "
          "through a real renderer replica\n")
    results = {}
    for name, argv in VARIANTS.items():
        r = results[name] = await measure(args.amqp_url, argv, settings)
        print(f"{name:<26} job {r['seconds']:5.2f} s  at rest {r['rest'] / 1024:5.1f} MB  "
              f"peak {r['peak'] / 1024:5.1f} MB  job {r['job'] / 1024:5.1f} MB  "
              f"anon {r['anon'] / 1024:5.1f} MB (peak {r['anon_peak'] / 1024:5.1f})  "
              f"ffmpeg {r['ffmpeg'] / 1024:5.1f} MB", flush=True)
    print()
    for name, r in results.items():
        print(f"{name}: peak {r['peak'] / 1024 / 78.6:.2f}x, job memory {r['job'] / 1024 / 78.6:.2f}x, "
              f"anon peak {r['anon_peak'] / 1024 / 78.6:.2f}x the 100 raw frames")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
