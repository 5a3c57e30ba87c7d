"""Real pinner processes against the Pinata emulator: the rate limit holds across replicas (counted by what
they attempt, not what the emulator admits), 429s delay jobs without losing them and nothing calls during a
Retry-After, and a replica killed between the upload being stored and its ledger write uploads nothing twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from mintpipe.core.scenes import settings_hash, validate_settings
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.pin_ledger import PinLedger
from mintpipe.v1 import broker_pb2, jobs_pb2
from renderer.render import RENDERER_VERSION, render_job
from tests.conftest import free_port
from tests.support.emulator import Emulator, running_emulator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
WALLET = "0x000000000000000000000000000000000000dEaD"


def start_pinner(rabbit_url: str, prefix: str, data_dir: Path, emu: Emulator, rate_limit: int,
                 window: float) -> subprocess.Popen:
    env = {**os.environ, "MINTPIPE_AMQP_URL": rabbit_url, "MINTPIPE_BROKER_PREFIX": prefix,
           "MINTPIPE_DATA_DIR": str(data_dir), "PINNER_BACKEND": "pinata", "PINNER_PINATA_JWT": emu.jwt,
           "PINNER_PINATA_API_URL": emu.url, "PINNER_PINATA_UPLOADS_URL": emu.url,
           "PINNER_RATE_LIMIT": str(rate_limit), "PINNER_RATE_WINDOW_SECONDS": str(window),
           "PINNER_HEALTH_PORT": str(free_port()), "MINTPIPE_GRACE_SECONDS": "5"}
    with open(data_dir / f"pinner-{uuid.uuid4().hex[:8]}.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "pinner"], env=env, stdout=log)


def log_entries(data_dir: Path) -> list[dict]:
    return [json.loads(line) for path in data_dir.glob("pinner-*.log") for line in path.read_text().splitlines()]


def pinner_totals(data_dir: Path) -> Counter:
    """The counters every replica logs when it stops (a replica killed with -9 logs none), summed."""
    totals: Counter = Counter()
    for entry in log_entries(data_dir):
        if entry.get("event") == "totals":
            totals.update({k: v for k, v in entry.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    return totals


def time_lost_to_waiting(data_dir: Path) -> tuple[float, float]:
    """(seconds slept for the shared rate limit or a shared Retry-After, seconds parked in retry tiers) summed
    over the replicas' logs."""
    totals = pinner_totals(data_dir)
    slept = totals["rate_wait_seconds"] + totals["retry_after_wait_seconds"]
    parked = sum(e["retry_in"] for e in log_entries(data_dir) if e.get("event") == "transient failure; retrying later")
    return slept, parked


def calls_during_retry_after(requests: list[dict], in_flight: float = 1.0) -> list[dict]:
    """Requests that arrived while a 429's Retry-After was running, not counting those arriving within
    `in_flight` seconds of the 429 (sent before the client could have read it)."""
    refusals = [(r["at"], r["at"] + float(r["retry_after"])) for r in requests
                if r["status"] == 429 and r["retry_after"] is not None]
    return [r for r in requests if any(start + in_flight < r["at"] < end for start, end in refusals)]


def pin_jobs(data_dir: Path, count: int) -> list[broker_pb2.PinJob]:
    artifacts = ArtifactStore(data_dir / "artifacts")
    jobs = []
    for seed in range(count):
        settings = validate_settings("gen1", {"seed": 100 + seed, "frames": 10, "size": 128})
        job_id = uuid.uuid4().hex
        assets = render_job("gen1", settings, artifacts.job_dir(job_id))
        jobs.append(broker_pb2.PinJob(
            job_id=job_id, scene="gen1", settings_json=json.dumps(settings), wallet=WALLET,
            renderer_version=RENDERER_VERSION, settings_hash=settings_hash("gen1", settings),
            artifacts=[broker_pb2.ArtifactRef(kind=a.kind, key=artifacts.key_of(a.path), content_type=a.content_type,
                                              size=a.size, sha256=a.sha256) for a in assets]))
    return jobs


async def wait_pinned(probe, queue: str, job_ids: set[str], timeout: float) -> dict[str, broker_pb2.JobEvent]:
    done: dict[str, broker_pb2.JobEvent] = {}
    deadline = time.monotonic() + timeout
    while set(done) != job_ids:
        assert time.monotonic() < deadline, f"pinned {len(done)} of {len(job_ids)} in {timeout}s"
        event = broker_pb2.JobEvent.FromString((await probe.take(queue, timeout=timeout)).body)
        assert event.stage != jobs_pb2.STAGE_FAILED, event.error
        if event.stage == jobs_pb2.STAGE_PINNED:
            done[event.job_id] = event
    return done


def stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in processes:
        p.wait(timeout=30)


async def test_three_pinners_share_one_rate_limit(rabbit_url, broker_prefix, broker, probe, tmp_path):
    limit, window = 10, 5.0
    with running_emulator(rate_limit=limit, window=window) as emu:
        pinners = [start_pinner(rabbit_url, broker_prefix, tmp_path, emu, limit, window + 1) for _ in range(3)]
        try:
            jobs = pin_jobs(tmp_path, 4)
            for job in jobs:
                await broker.publish(broker.topology.jobs_exchange, "pin", job)
            started = time.monotonic()
            await wait_pinned(probe, broker.topology.status_queue, {j.job_id for j in jobs}, timeout=150)
            elapsed = time.monotonic() - started
        finally:
            stop(pinners)
        stats = emu.stats()
    slept, parked = time_lost_to_waiting(tmp_path)
    print(f"\n3 pinners, limit {limit}/{window:.0f}s: {stats['requests']} requests in {elapsed:.1f}s (the limit "
          f"allows it in {(stats['requests'] - 1) // limit * window:.0f}s at best), max attempted in a window "
          f"{stats['max_attempts_in_window']}, 429s {stats['rate_limited']}, uploads per CID "
          f"{sorted(set(stats['uploads_per_cid'].values()))}; waiting: {slept:.1f}s slept across replicas, "
          f"{parked:.0f}s parked in retry tiers")
    # Attempts, not admissions: the emulator admits at most `limit` whatever the clients do.
    assert stats["max_attempts_in_window"] <= limit
    assert stats["rate_limited"] == 0
    assert set(stats["uploads_per_cid"].values()) == {1}
    assert len(stats["uploads_per_cid"]) == 4 * 4


async def test_429s_delay_jobs_through_the_retry_queue_and_lose_nothing(rabbit_url, broker_prefix, broker, probe,
                                                                     tmp_path):
    with running_emulator(rate_limit=4, window=3) as emu:
        pinner = start_pinner(rabbit_url, broker_prefix, tmp_path, emu, rate_limit=1000, window=60)
        try:
            jobs = pin_jobs(tmp_path, 2)
            started = time.monotonic()
            for job in jobs:
                await broker.publish(broker.topology.jobs_exchange, "pin", job)
            await wait_pinned(probe, broker.topology.status_queue, {j.job_id for j in jobs}, timeout=150)
            elapsed = time.monotonic() - started
        finally:
            stop([pinner])
        stats, requests = emu.stats(), emu.requests()
    slept, parked = time_lost_to_waiting(tmp_path)
    print(f"\n429s seen {stats['rate_limited']}, requests {stats['requests']}, 2 jobs pinned in {elapsed:.1f}s "
          f"(the server allows 4 requests per 3 s), uploads per CID {sorted(set(stats['uploads_per_cid'].values()))}"
          f"; waiting: {slept:.1f}s slept out, {parked:.0f}s parked in retry tiers")
    assert stats["rate_limited"] > 0, "the test did not exercise the server's limit"
    assert calls_during_retry_after(requests) == [], "a request went out during a Retry-After"
    assert set(stats["uploads_per_cid"].values()) == {1}


async def test_a_pinner_killed_between_upload_and_ack_uploads_nothing_twice(rabbit_url, broker_prefix, broker,
                                                                          probe, tmp_path):
    with running_emulator() as emu:
        job = pin_jobs(tmp_path, 1)[0]
        emu.fault(count=1)  # the first asset's lookup answers normally...
        emu.fault(delay_after=60)  # ...its upload is stored, but the answer is held: the replica never hears of it
        first = start_pinner(rabbit_url, broker_prefix, tmp_path, emu, 1000, 60)
        await broker.publish(broker.topology.jobs_exchange, "pin", job)
        deadline = time.monotonic() + 60
        while not (uploaded := emu.stats()["uploads_per_cid"]):
            assert time.monotonic() < deadline, "first upload never happened"
            await asyncio.sleep(0.05)
        (cid,) = uploaded
        ledger = PinLedger(tmp_path / "pins.sqlite3", "pinata-v3")
        assert not await ledger.is_pinned(cid), "the kill must fall before the ledger write"
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert not await ledger.is_pinned(cid), "only the backend knows of the first upload now"
        restarted = time.time()
        second = start_pinner(rabbit_url, broker_prefix, tmp_path, emu, 1000, 60)
        try:
            await wait_pinned(probe, broker.topology.status_queue, {job.job_id}, timeout=120)
        finally:
            stop([second])
        stats, requests = emu.stats(), emu.requests(since=restarted)
    lookups = [r for r in requests if r["method"] == "GET" and r["cid"] == cid]
    totals = pinner_totals(tmp_path)
    print(f"\nkilled after the upload of {cid[:16]}... was stored, before the ledger write; after the restart: "
          f"{len(lookups)} list-by-CID lookup(s) of it, uploads per CID {sorted(stats['uploads_per_cid'].values())}, "
          f"skipped as listed {totals['skipped_listed']}")
    assert len(stats["uploads_per_cid"]) == 4
    assert set(stats["uploads_per_cid"].values()) == {1}, stats["uploads_per_cid"]
    # The restarted replica found the first asset through the backend's own list, not its ledger.
    assert [r["status"] for r in lookups] == [200]
    assert totals["skipped_listed"] == 1
    assert await ledger.is_pinned(cid)
