"""How fast an operator's cancel stops a render, side by side in one run: the real render consumer (on the local
RabbitMQ, a queue prefix of its own, deleted after) holding a long render (240 frames, 1024², ~15 s whole), and
the cancel marker written at a random moment into it. Measured per trial: from the marker to the render thread
having stopped and the job dropped (the consumer idle, its files cleared). Beside it, for scale, the same
render stopped by its in-process cancel event alone (what a draining replica does): the difference is the
marker poll (renderer.consumer.CANCEL_POLL).

README promises renderers stop within half a second; tests check that a cancel stops the work, this measures
how fast.

Run: .venv/bin/python bench/cancel.py [--amqp-url URL] [--trials 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "libs"), str(ROOT / "services")]

from mintpipe.core.scenes import validate_settings  # noqa: E402
from mintpipe.messaging.broker import Broker, Topology, delete_topology  # noqa: E402
from mintpipe.objects.artifacts import ArtifactStore  # noqa: E402
from mintpipe.v1 import broker_pb2, jobs_pb2  # noqa: E402
from renderer.consumer import CANCEL_POLL, render_consumer  # noqa: E402
from renderer.render import RenderCancelled, render_job  # noqa: E402

SETTINGS = validate_settings("gen1", {"seed": 9, "frames": 240, "size": 1024})
WALLET = "0x000000000000000000000000000000000000dEaD"


async def marker_trial(broker: Broker, artifacts: ArtifactStore, consumer, rng: random.Random) -> float:
    job = broker_pb2.RenderJob(job_id=uuid.uuid4().hex, scene="gen1", settings_json=json.dumps(SETTINGS),
                               wallet=WALLET)
    channel = await broker.channel(100)
    events = await channel.get_queue(broker.topology.status_queue, ensure=False)
    await broker.publish(broker.topology.jobs_exchange, "render", job)
    while True:  # until the render is under way
        message = await events.get(no_ack=True, fail=False)
        if message is not None and broker_pb2.JobEvent.FromString(message.body).stage == jobs_pb2.STAGE_RENDERING:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(rng.uniform(0.5, 3.0))
    started = time.perf_counter()
    artifacts.cancel(job.job_id)
    folder = artifacts.job_dir(job.job_id)
    while consumer.inflight or (folder.exists() and any(folder.iterdir())):  # noqa: ASYNC110 (polled: no event)
        await asyncio.sleep(0.002)
    took = time.perf_counter() - started
    await channel.close()
    return took


def event_trial(rng: random.Random) -> float:
    cancel, stopped = threading.Event(), threading.Event()
    out = Path(tempfile.mkdtemp(prefix="bench-cancel-"))

    def run() -> None:
        try:
            render_job("gen1", SETTINGS, out, cancel=cancel)
        except RenderCancelled:
            pass
        stopped.set()

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(rng.uniform(0.5, 3.0))
    started = time.perf_counter()
    cancel.set()
    stopped.wait()
    took = time.perf_counter() - started
    thread.join()
    return took


def summary(name: str, values: list[float]) -> str:
    return (f"{name:<44} min {min(values) * 1000:6.0f} ms   median {statistics.median(values) * 1000:6.0f} ms   "
            f"max {max(values) * 1000:6.0f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    broker = Broker(args.amqp_url, Topology(f"bench-cancel-{uuid.uuid4().hex[:8]}"), "bench-cancel")
    await broker.connect(attempts=3)
    artifacts = ArtifactStore(Path(tempfile.mkdtemp(prefix="bench-cancel-artifacts-")))
    consumer = render_consumer(broker, artifacts)
    await consumer.start()
    try:
        marker = [await marker_trial(broker, artifacts, consumer, rng) for _ in range(args.trials)]
    finally:
        await consumer.stop(5)
        channel = await broker.channel(1)
        await delete_topology(channel, broker.topology)
        await broker.close()
    event = [await asyncio.to_thread(event_trial, rng) for _ in range(args.trials)]
    print(f"cancel latency, {args.trials} trials each (240 frames of 1024², cancelled 0.5-3 s in):")
    print(summary("operator's cancel (marker -> job dropped)", marker))
    print(summary("in-process cancel event (render stops)", event))
    print(f"marker poll every {CANCEL_POLL:g} s; promise: within 0.5 s. "
          f"median ratio marker/event: {statistics.median(marker) / statistics.median(event):.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
