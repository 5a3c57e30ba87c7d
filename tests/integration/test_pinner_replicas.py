"""Real pinner processes against the Pinata emulator: the rate limit holds across replicas, 429s delay jobs
without losing them, and a replica killed between upload and ack causes no second upload."""

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

import pytest

from mintpipe.artifacts import ArtifactStore
from mintpipe.scenes import settings_hash, validate_settings
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


def time_lost_to_waiting(data_dir: Path) -> tuple[float, float]:
    """(seconds slept for the shared rate limit, seconds parked in retry tiers) summed over the replicas' logs."""
    slept = parked = 0.0
    for path in data_dir.glob("pinner-*.log"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("event") == "totals":
                slept += entry.get("rate_wait_seconds", 0.0)
            elif entry.get("event") == "transient failure; retrying later":
                parked += entry["retry_in"]
    return slept, parked


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
          f"allows it in {(stats['requests'] - 1) // limit * window:.0f}s at best), max in window "
          f"{stats['max_requests_in_window']}, 429s {stats['rate_limited']}, uploads per CID "
          f"{sorted(set(stats['uploads_per_cid'].values()))}; waiting: {slept:.1f}s slept across replicas, "
          f"{parked:.0f}s parked in retry tiers")
    assert stats["max_requests_in_window"] <= limit
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
        stats = emu.stats()
    slept, parked = time_lost_to_waiting(tmp_path)
    print(f"\n429s seen {stats['rate_limited']}, requests {stats['requests']}, 2 jobs pinned in {elapsed:.1f}s "
          f"(the server allows 4 requests per 3 s), uploads per CID {sorted(set(stats['uploads_per_cid'].values()))}"
          f"; waiting: {parked:.0f}s parked in retry tiers")
    assert stats["rate_limited"] > 0, "the test did not exercise the server's limit"
    assert set(stats["uploads_per_cid"].values()) == {1}


async def test_a_pinner_killed_between_upload_and_ack_uploads_nothing_twice(rabbit_url, broker_prefix, broker,
                                                                          probe, tmp_path):
    with running_emulator() as emu:
        job = pin_jobs(tmp_path, 1)[0]
        emu.fault(count=2)  # lookup and upload of the first asset answer normally...
        emu.fault(delay=30)  # ...then the replica hangs with one upload done and nothing acked
        first = start_pinner(rabbit_url, broker_prefix, tmp_path, emu, 1000, 60)
        await broker.publish(broker.topology.jobs_exchange, "pin", job)
        deadline = time.monotonic() + 60
        while emu.stats()["uploads_per_cid"] == {}:
            assert time.monotonic() < deadline, "first upload never happened"
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = start_pinner(rabbit_url, broker_prefix, tmp_path, emu, 1000, 60)
        try:
            await wait_pinned(probe, broker.topology.status_queue, {job.job_id}, timeout=90)
        finally:
            stop([second])
        stats = emu.stats()
    assert len(stats["uploads_per_cid"]) == 4
    assert set(stats["uploads_per_cid"].values()) == {1}, stats["uploads_per_cid"]
