"""Several status replicas on one PostgreSQL database (issue 11): watchers on every replica see every change
live whichever replica consumed it, one replica at a time runs the sweepers (taken over when it is killed),
and the per-IP / per-wallet limits are one budget across replicas."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from mintpipe.limits.memory import KeyedRateLimiter, rate_limiter
from mintpipe.limits.postgres import PgRateLimiter
from mintpipe.messaging.broker import Broker, Topology
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.service import apply_and_announce
from tests.conftest import free_port
from tests.support.broker import delete_topology
from tests.support.status_replicas import grpc_watch, sse_watch, status_replica

pytestmark = pytest.mark.integration

WALLET = "0x000000000000000000000000000000000000dEaD"


async def test_watchers_on_every_replica_see_every_change_whichever_replica_consumed_it(pg_dsn, tmp_path):
    # Watchers poll the store only every 600 s here: each change they see within the test came by the feed.
    async with status_replica(pg_dsn, tmp_path / "a", "a") as a, status_replica(pg_dsn, tmp_path / "b", "b") as b:
        job, _ = await a.store.reserve("k1", "a" * 64, WALLET, "gen1", json.dumps({"seed": 1}))
        async with sse_watch(a.url, job.job_id) as on_a, sse_watch(b.url, job.job_id) as on_b, \
                grpc_watch(a.grpc_target, job.job_id) as grpc_a, grpc_watch(b.grpc_target, job.job_id) as grpc_b:
            assert (await asyncio.wait_for(on_a.get(), 10))["stage"] == "queued"
            assert (await asyncio.wait_for(on_b.get(), 10))["stage"] == "queued"
            for watch in (grpc_a, grpc_b):
                assert (await asyncio.wait_for(watch.get(), 10)).stage == jobs_pb2.STAGE_QUEUED
            steps = [(jobs_pb2.STAGE_RENDERING, 10), (jobs_pb2.STAGE_RENDERING, 40), (jobs_pb2.STAGE_RENDERING, 70),
                     (jobs_pb2.STAGE_RENDERED, 80), (jobs_pb2.STAGE_PINNING, 90), (jobs_pb2.STAGE_PINNED, 100)]
            for i, (stage, progress) in enumerate(steps):
                consumer = (a, b)[i % 2]  # the events queue is shared: either replica may consume any event
                event = broker_pb2.JobEvent(job_id=job.job_id, stage=stage, progress=progress, source="renderer")
                if stage == jobs_pb2.STAGE_PINNED:
                    event.token_uri = "ipfs://bafkreitoken"
                assert await apply_and_announce(consumer.store, consumer.bus, event) is not None
                seen_a = await asyncio.wait_for(on_a.get(), 15)
                seen_b = await asyncio.wait_for(on_b.get(), 15)
                assert seen_a == seen_b, f"step {i}: the replicas' watchers disagree"
                assert seen_b["progress"] == progress, f"step {i} (consumed on {consumer.name}) not seen live"
                for watch in (grpc_a, grpc_b):  # gRPC WatchJob clients on either replica, likewise
                    job_now = await asyncio.wait_for(watch.get(), 15)
                    assert (job_now.stage, job_now.progress) == (stage, progress), f"step {i} over gRPC"
            assert seen_b["stage"] == "pinned" and seen_b["token_uri"] == "ipfs://bafkreitoken"


async def test_two_replicas_share_one_budget_per_key(pg_dsn):
    # Two replicas' limiters (each its own connection pool), 10 tokens for a key, 1 a minute after that.
    a, b = (PgRateLimiter(pg_dsn, "ip", rate=1, per=60, burst=10) for _ in range(2))
    try:
        waits = await asyncio.gather(*(limiter.take("203.0.113.7") for limiter in (a, b) * 12))
        assert sum(w == 0 for w in waits) == 10, "24 concurrent requests on two replicas: only the budget of one"
        assert all(50 < w <= 60 for w in waits if w > 0), "a refusal says when the next token comes"
        assert await b.take("203.0.113.7") > 0 and await a.take("203.0.113.7") > 0
        assert await b.take("198.51.100.1") == 0, "another key has its own budget"
        other_scope = PgRateLimiter(pg_dsn, "wallet", rate=1, per=60, burst=1)
        assert await other_scope.take("203.0.113.7") == 0, "a wallet's budget is not an IP's"
        await other_scope.close()
    finally:
        await a.close()
        await b.close()


def test_limits_stay_in_memory_without_postgres():
    assert isinstance(rate_limiter(None, "ip", 60, 60, 5), KeyedRateLimiter)
    assert isinstance(rate_limiter("postgresql://u@h/db", "ip", 60, 60, 5), PgRateLimiter)


# --- the leader: two real status processes, kill -9 the one that leads ----------------------------------------

def _start_status(name: str, data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    http_port, log_path = free_port(), data_dir / f"{name}.log"
    full_env = {**os.environ, **env, "MINTPIPE_DATA_DIR": str(data_dir), "STATUS_HTTP_PORT": str(http_port),
                "STATUS_GRPC_PORT": str(free_port()), "STATUS_REPLICA_NAME": name, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "status"], env=full_env, stdout=log,
                                   stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{http_port}", log_path


def _replica(url: str) -> dict | None:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).json().get("replica")
    except (httpx.HTTPError, ValueError):
        return None


def _wait(condition, what: str, seconds: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds:.0f} s:\n" + "\n".join(p.read_text()[-2000:] for p in logs))
        time.sleep(0.2)


def test_one_replica_runs_the_sweepers_and_another_takes_over_when_it_is_killed(pg_dsn, rabbit_url, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = {"MINTPIPE_AMQP_URL": rabbit_url, "MINTPIPE_BROKER_PREFIX": prefix, "MINTPIPE_DATABASE_URL": pg_dsn,
           "MINTPIPE_GRACE_SECONDS": "5"}
    replicas = {name: _start_status(name, tmp_path / name, env) for name in ("red", "blue")}
    logs = [log for _, _, log in replicas.values()]
    try:
        def leaders() -> list[str]:
            seen = {name: _replica(url) for name, (_, url, _) in replicas.items()}
            return [name for name, r in seen.items() if r and r["leader"]] if all(seen.values()) else []

        _wait(lambda: len(leaders()) == 1, "both replicas up, one leading", 60, logs)
        time.sleep(1.5)  # a second leader would have taken the lock by now (retry every 1 s)
        leading = leaders()
        assert len(leading) == 1
        leader, follower = leading[0], ({"red", "blue"} - set(leading)).pop()
        started = {name: log.read_text().count("this replica is the leader") for name, (_, _, log) in replicas.items()}
        assert started == {leader: 1, follower: 0}, "only the leader starts the sweepers"
        assert "orphan-sweeper" in replicas[leader][2].read_text()

        replicas[leader][0].send_signal(signal.SIGKILL)
        replicas[leader][0].wait(10)
        follower_url = replicas[follower][1]
        _wait(lambda: (_replica(follower_url) or {}).get("leader") is True,
                                f"{follower} taking over from the killed {leader}", 30, logs)
        assert replicas[follower][2].read_text().count("this replica is the leader") == 1
        health = httpx.get(f"{follower_url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["replica"] == {"name": follower, "leader": True}
    finally:
        for process, _, _ in replicas.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
        asyncio.run(_delete_queues(rabbit_url, prefix))


async def _delete_queues(rabbit_url: str, prefix: str) -> None:
    broker = Broker(rabbit_url, Topology(prefix), "test-cleanup")
    await broker.connect(attempts=3)
    await delete_topology(broker)
    await broker.close()


async def test_a_leader_whose_connection_is_cut_steps_down_and_the_other_leads(pg_dsn):
    import asyncpg

    from mintpipe.db.replica import LOCK_NAMESPACE
    from status.replicas.leader import Leadership

    runs = {"one": 0, "two": 0}

    def duty(name: str):
        async def sweep() -> None:
            runs[name] += 1
            await asyncio.Event().wait()
        return sweep

    one, two = Leadership("one", pg_dsn, 0.2), Leadership("two", pg_dsn, 0.2)
    one.add("sweeper", duty("one"))
    two.add("sweeper", duty("two"))
    admin = await asyncpg.connect(pg_dsn)
    try:
        await one.start()
        for _ in range(100):
            if one.is_leader:
                break
            await asyncio.sleep(0.05)
        await two.start()
        await asyncio.sleep(1.0)  # five of its attempts
        assert (one.is_leader, two.is_leader) == (True, False) and runs == {"one": 1, "two": 0}

        # The database ends the leader's session (a restart, a network cut, an operator): its lock goes with it.
        holder = await admin.fetchval("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 "
                                      "AND granted", LOCK_NAMESPACE)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", holder)
        for _ in range(300):
            if two.is_leader and not one.is_leader:
                break
            await asyncio.sleep(0.05)
        assert (one.is_leader, two.is_leader) == (False, True), "the other replica took over, the old one stepped down"
        assert runs == {"one": 1, "two": 1}
        await asyncio.sleep(1.0)
        assert not one.is_leader, "the old leader competes again, as a follower"
    finally:
        await one.stop()
        await two.stop()
        await admin.close()
