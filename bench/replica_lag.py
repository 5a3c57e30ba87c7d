"""Several status replicas (issue 11), measured side by side in one run:

  transport   a change announced by one replica reaching another: PostgreSQL NOTIFY (asyncpg add_listener)
              vs a RabbitMQ fanout exchange (publisher confirms, an exclusive queue per replica, no-ack consumer),
              one message at a time, median/p95 of send -> receive
  sse         an SSE watcher's lag for an event applied on replica A (the store commit, then the bus), as seen
              by a watcher on A itself and by one on replica B (the feed: NOTIFY, then B re-reads the job)
  takeover    `kill -9` of the leading replica's process -> the other replica leads (status.replicas.leader, retry 1 s)
  limit       one rate-limit check: the shared PostgreSQL bucket (one upsert) vs the in-memory one

Needs the local PostgreSQL (MINTPIPE_BENCH_POSTGRES_URL, default postgresql://root@127.0.0.1:5432/postgres; a
database of its own, dropped afterwards) and RabbitMQ (MINTPIPE_AMQP_URL; an auto-deleted exchange).
    .venv/bin/python bench/replica_lag.py [--messages 1000] [--events 300] [--kills 5]
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

import aio_pika  # noqa: E402
import asyncpg  # noqa: E402

from mintpipe.limits.memory import KeyedRateLimiter  # noqa: E402
from mintpipe.limits.postgres import PgRateLimiter  # noqa: E402
from mintpipe.v1 import broker_pb2, jobs_pb2  # noqa: E402
from status.jobs.service import apply_and_announce  # noqa: E402
from tests.support.status_replicas import sse_watch, status_replica  # noqa: E402

SERVER = os.environ.get("MINTPIPE_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")
AMQP = os.environ.get("MINTPIPE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
WALLET = "0x000000000000000000000000000000000000dEaD"


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1e3:7.2f} ms   p95 {p95 * 1e3:7.2f} ms   (n={len(ordered)})"


async def notify_lag(dsn: str, n: int) -> list[float]:
    sender, listener = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    got: asyncio.Queue[float] = asyncio.Queue()
    await listener.add_listener("bench", lambda *_: got.put_nowait(time.perf_counter()))
    lags = []
    for i in range(n):
        start = time.perf_counter()
        await sender.execute("SELECT pg_notify('bench', $1)", f"replica|{i:032x}")
        lags.append(await got.get() - start)
    await sender.close()
    await listener.close()
    return lags


async def fanout_lag(n: int) -> list[float]:
    pub, sub = await aio_pika.connect_robust(AMQP), await aio_pika.connect_robust(AMQP)
    pch, sch = await pub.channel(publisher_confirms=True), await sub.channel()
    name = f"bench.feed.{uuid.uuid4().hex[:8]}"
    exchange = await pch.declare_exchange(name, aio_pika.ExchangeType.FANOUT, auto_delete=True)
    queue = await sch.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(name)
    got: asyncio.Queue[float] = asyncio.Queue()

    async def on_message(_message: aio_pika.abc.AbstractIncomingMessage) -> None:
        got.put_nowait(time.perf_counter())

    await queue.consume(on_message, no_ack=True)
    lags = []
    for i in range(n):
        start = time.perf_counter()
        await exchange.publish(aio_pika.Message(f"replica|{i:032x}".encode()), routing_key="")
        lags.append(await got.get() - start)
    await pub.close()
    await sub.close()
    return lags


async def sse_lag(dsn: str, events: int, folder: Path) -> tuple[list[float], list[float]]:
    same, other = [], []
    async with status_replica(dsn, folder / "a", "a") as a, status_replica(dsn, folder / "b", "b") as b:
        per_job = 99
        for j in range(max(1, events // per_job)):
            job, _ = await a.store.reserve(f"k{j}", f"{j:064x}", WALLET, "gen1", json.dumps({"seed": j}))
            async with sse_watch(a.url, job.job_id) as on_a, sse_watch(b.url, job.job_id) as on_b:
                await on_a.get()
                await on_b.get()
                for progress in range(1, per_job + 1):
                    event = broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_RENDERING,
                                                progress=progress, source="bench")
                    start = time.perf_counter()
                    await apply_and_announce(a.store, a.bus, event)
                    seen = {}

                    async def first(name: str, q: asyncio.Queue[dict], seen: dict = seen) -> None:
                        await q.get()
                        seen[name] = time.perf_counter()

                    await asyncio.gather(first("a", on_a), first("b", on_b))
                    same.append(seen["a"] - start)
                    other.append(seen["b"] - start)
    return same, other


LEADER_SCRIPT = """
import asyncio, sys, time
from status.replicas.leader import Leadership
async def main():
    lead = Leadership(sys.argv[2], sys.argv[1], retry_seconds=1.0)
    lead.add("duty", lambda: asyncio.Event().wait())
    await lead.start()
    while not lead.is_leader:
        await asyncio.sleep(0.01)
    print(f"LEADER {time.time()}", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def spawn(dsn: str, name: str, folder: Path) -> tuple[subprocess.Popen, Path]:
    out = folder / f"{name}.out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "libs"), str(ROOT / "services")])}
    with open(out, "wb") as f:
        return subprocess.Popen([sys.executable, "-c", LEADER_SCRIPT, dsn, name], stdout=f, env=env), out


def leader_at(out: Path) -> float | None:
    for line in out.read_text().splitlines():
        if line.startswith("LEADER "):
            return float(line.split()[1])
    return None


def takeover(dsn: str, kills: int, folder: Path) -> list[float]:
    times = []
    procs = [spawn(dsn, f"r{i}", folder) for i in range(2)]
    counter = 2
    try:
        for _ in range(kills):
            deadline = time.time() + 30
            while not any(leader_at(out) for _, out in procs):
                if time.time() > deadline:
                    raise RuntimeError("no leader in 30 s")
                time.sleep(0.05)
            time.sleep(1.5)  # the follower is in its retry loop, as in a running system
            leader = next(p for p in procs if leader_at(p[1]))
            follower = next(p for p in procs if p is not leader)
            killed = time.time()
            leader[0].kill()
            leader[0].wait()
            while (at := leader_at(follower[1])) is None:
                if time.time() > killed + 30:
                    raise RuntimeError("no takeover in 30 s")
                time.sleep(0.01)
            times.append(at - killed)
            procs = [follower, spawn(dsn, f"r{counter}", folder)]
            counter += 1
    finally:
        for p, _ in procs:
            p.kill()
            p.wait()
    return times


async def limit_cost(dsn: str, n: int) -> tuple[list[float], list[float]]:
    shared, local = PgRateLimiter(dsn, "bench", 1e6, 60, 1_000_000), KeyedRateLimiter(1e6, 60, 1_000_000)
    await shared.take("warm")
    out: tuple[list[float], list[float]] = ([], [])
    for i in range(n):
        for limiter, samples in ((shared, out[0]), (local, out[1])):
            start = time.perf_counter()
            await limiter.take(f"198.51.100.{i % 200}")
            samples.append(time.perf_counter() - start)
    await shared.close()
    return out


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--events", type=int, default=297)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    name = f"mintpipe_bench_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE DATABASE "{name}"')
    dsn = SERVER.rsplit("/", 1)[0] + f"/{name}"
    try:
        print(f"transport, one message at a time ({args.messages} each):")
        print(f"  PostgreSQL NOTIFY       {ms(await notify_lag(dsn, args.messages))}")
        print(f"  RabbitMQ fanout         {ms(await fanout_lag(args.messages))}")
        with tempfile.TemporaryDirectory() as tmp:
            same, other = await sse_lag(dsn, args.events, Path(tmp))
            print("SSE watcher lag, event applied on replica A:")
            print(f"  watcher on A (same)     {ms(same)}")
            print(f"  watcher on B (other)    {ms(other)}")
            print(f"  ratio B/A (median)      {statistics.median(other) / statistics.median(same):.2f}x")
            kills = await asyncio.to_thread(takeover, dsn, args.kills, Path(tmp))
            print(f"leader takeover after kill -9 (retry 1 s): {ms(kills)}, max {max(kills):.2f} s")
        shared, local = await limit_cost(dsn, args.messages)
        print("one rate-limit check:")
        print(f"  PostgreSQL bucket       {ms(shared)}")
        print(f"  in memory               {ms(local)}")
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
