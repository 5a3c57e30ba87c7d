"""The artifact store on S3 against the local folder, side by side in one run, on a real SeaweedFS (started here,
as the tests do: tests/support/seaweed.py).

1. One default job (100 frames of 512²) through the real render and pin consumers on the local RabbitMQ (a queue
   prefix of its own, deleted after), with MINTPIPE_ARTIFACTS_URL on the object store: requests to the store by
   operation, bytes each way, and wall time, against the same job on the local folder.
2. Renderer peak memory (VmHWM of a fresh process) for: the local folder; S3 streamed (the multipart upload the
   renderer does, 5 MiB parts); and, for scale, S3 with each file read whole and PUT in one request.

Run: .venv/bin/python bench/artifacts_s3.py [--amqp-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "libs"), str(ROOT / "services")]

from mintpipe.core.scenes import validate_settings  # noqa: E402

SETTINGS = validate_settings("gen1", {"seed": 9})
WALLET = "0x000000000000000000000000000000000000dEaD"


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(mode: str, url: str) -> None:
    """One render and upload in this fresh process; prints its peak memory before and after the upload."""
    from mintpipe.objects.artifacts import open_artifacts
    from renderer.render import render_job

    data = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    store = open_artifacts(None if mode == "local" else url, data)
    job_id = uuid.uuid4().hex
    opened = vm_hwm_mb()  # boto3's import is most of the S3 engine's fixed cost
    with store.workspace(job_id) as folder:
        assets = render_job("gen1", SETTINGS, folder)
        rendered = vm_hwm_mb()
        began = time.perf_counter()
        if mode == "s3-whole":
            for a in assets:
                store.bucket.client.put_object(Bucket=store.bucket.name, Body=a.path.read_bytes(),
                                               Key=store._key(store.key_for(job_id, a.path.name)),
                                               ContentType=a.content_type, Metadata={"sha256": a.sha256})
        else:
            store.publish(job_id, [(a.path, a.content_type, a.sha256) for a in assets])
        upload = time.perf_counter() - began
    print(json.dumps({"opened_mb": opened, "rendered_mb": rendered, "peak_mb": vm_hwm_mb(), "upload_s": upload,
                      "bytes": sum(a.size for a in assets)}))


async def one_job(amqp_url: str, url: str | None, data: Path) -> dict:
    from mintpipe.messaging.broker import Broker, Topology, delete_topology
    from mintpipe.objects.artifacts import open_artifacts
    from mintpipe.objects.ipfs import open_ipfs
    from mintpipe.objects.s3 import TRAFFIC
    from mintpipe.pin_ledger import PinLedger
    from mintpipe.v1 import broker_pb2, jobs_pb2
    from pinner.backends import LocalBackend
    from pinner.consumer import pin_consumer
    from pinner.pinning import PinService
    from renderer.consumer import render_consumer

    broker = Broker(amqp_url, Topology(f"bench-s3-{uuid.uuid4().hex[:8]}"), "bench-s3")
    await broker.connect(attempts=3)
    # The local folder is one data folder shared by both (as on one host); on S3 each has its own.
    mine, theirs = (data / "renderer", data / "pinner") if url else (data, data)
    renderer = render_consumer(broker, open_artifacts(url, mine))
    ipfs = open_ipfs(url, theirs)
    pins = PinService(LocalBackend(ipfs), PinLedger(theirs / "pins.sqlite3", "local"), ipfs,
                      rate_limit=100, rate_window=60, monthly_pins=None)
    pinner = pin_consumer(broker, open_artifacts(url, theirs), pins)
    channel = await broker.channel(1)
    events = await channel.declare_queue(exclusive=True)
    await events.bind(broker.topology.events_exchange, "#")
    await renderer.start()
    await pinner.start()
    before = TRAFFIC.snapshot()
    began = time.perf_counter()
    job = broker_pb2.RenderJob(job_id=uuid.uuid4().hex, scene="gen1", settings_json=json.dumps(SETTINGS),
                               wallet=WALLET)
    try:
        await broker.publish(broker.topology.jobs_exchange, "render", job)
        async with events.iterator() as messages:
            async for message in messages:
                await message.ack()
                event = broker_pb2.JobEvent.FromString(message.body)
                if event.stage in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_FAILED):
                    break
        wall = time.perf_counter() - began
        while renderer.inflight or pinner.inflight:  # noqa: ASYNC110 (the consumers expose no event)
            await asyncio.sleep(0.05)
    finally:
        await pinner.stop(5)
        await renderer.stop(5)
        await delete_topology(channel, broker.topology)
        await broker.close()
    after = TRAFFIC.snapshot()
    ops = {k: v - before["by_operation"].get(k, 0) for k, v in after["by_operation"].items()}
    return {"stage": event.stage, "error": event.error, "wall_s": wall,
            "requests": after["requests"] - before["requests"],
            "sent": after["bytes_sent"] - before["bytes_sent"],
            "received": after["bytes_received"] - before["bytes_received"],
            "ops": {k: v for k, v in ops.items() if v}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp-url", default=os.environ.get("MINTPIPE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--child", choices=["local", "s3", "s3-whole"])
    parser.add_argument("--url")
    parser.add_argument("--trials", type=int, default=3, help="jobs per engine, alternating (median wall time)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url)
        return
    from tests.support.seaweed import running_seaweed

    with running_seaweed(Path(tempfile.mkdtemp(prefix="bench-seaweed-"))) as sw:
        bucket = sw.create_bucket()
        url = f"s3://{bucket}/bench"
        os.environ.update(sw.aws_env())
        print(f"one default job (100 frames of 512²), render -> pinned, local pin backend; median of {args.trials} "
              "alternating trials (the machine is shared: wall times are noisy):")
        runs: dict[str, list[dict]] = {"local folder": [], "S3 (SeaweedFS)": []}
        for _ in range(args.trials):
            # A fresh prefix each trial: the same content pinned before would be found and not sent again.
            for name, target in (("local folder", None), ("S3 (SeaweedFS)", f"{url}/{uuid.uuid4().hex[:8]}")):
                r = asyncio.run(one_job(args.amqp_url, target, Path(tempfile.mkdtemp(prefix="bench-s3-job-"))))
                assert r["error"] == "" and r["stage"] == 5, r  # jobs_pb2.STAGE_PINNED
                runs[name].append(r)
        walls = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
        for name, rs in runs.items():
            r = rs[-1]
            print(f"  {name:<15} wall {walls[name]:.2f} s   requests {r['requests']:>3}   "
                  f"sent {r['sent'] / 1e6:6.2f} MB   received {r['received'] / 1e6:6.2f} MB")
            if r["ops"]:
                print("                  by operation: " + ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items())))
        print(f"  wall S3 / local: {walls['S3 (SeaweedFS)'] / walls['local folder']:.2f}x")
        print("renderer peak memory (VmHWM of a fresh process rendering and storing one default job):")
        env = {**os.environ, **sw.aws_env()}
        rows = {}
        for mode in ("local", "s3", "s3-whole"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--url", url], env=env,
                                 capture_output=True, text=True, check=True)
            rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        for mode, label in (("local", "local folder"), ("s3", "S3 multipart, streamed"),
                            ("s3-whole", "S3, each file read whole")):
            r = rows[mode]
            print(f"  {label:<26} store opened {r['opened_mb']:6.1f} MB   after render {r['rendered_mb']:6.1f} MB   "
                  f"peak {r['peak_mb']:6.1f} MB   upload {r['upload_s']:.2f} s for {r['bytes'] / 1e6:.2f} MB")
        added = {m: rows[m]["peak_mb"] - rows[m]["rendered_mb"] for m in rows}
        print(f"  what the upload adds to the peak: streamed {added['s3']:.1f} MB, read whole "
              f"{added['s3-whole']:.1f} MB; peak S3 streamed / local "
              f"{rows['s3']['peak_mb'] / rows['local']['peak_mb']:.2f}x"
              f" (of which the client library: {rows['s3']['opened_mb'] - rows['local']['opened_mb']:.1f} MB)")


if __name__ == "__main__":
    main()
