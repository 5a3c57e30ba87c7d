"""Disk use stays bounded, and a nearly full volume is said out loud: rendered files leave once pinned (or once a
failed job's replay window is over), cancel markers are swept, the local IPFS store holds nothing when pinning
elsewhere, and the bridge reports its volume in /healthz (degraded when nearly full) and refuses new jobs with a
503 naming the disk before the volume is full."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.pin_ledger import PinLedger
from mintpipe.runtime.disk import DiskGuard
from mintpipe.v1 import broker_pb2, jobs_pb2
from pinner.backends import PinataBackend
from pinner.pinning import PinService
from status.jobs.store import JobStore
from status.workers.artifact_sweeper import ArtifactSweeper
from tests.integration.test_pinner_consumer import pinned_event, rendered_pin_job
from tests.support.emulator import running_emulator
from tests.support.live_bridge import live_bridge

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
WALLET = "0x000000000000000000000000000000000000dEaD"
HOUR = 3600.0


def _files(artifacts: ArtifactStore, job_id: str) -> None:
    folder = artifacts.job_dir(job_id)
    folder.mkdir(parents=True)
    (folder / "image.gif").write_bytes(os.urandom(4096))


async def _job(store: JobStore, stage: int) -> str:
    job, _ = await store.reserve(f"k-{uuid.uuid4()}", uuid.uuid4().hex * 2, WALLET, "gen1", "{}")
    if stage != jobs_pb2.STAGE_QUEUED:
        await store.apply(broker_pb2.JobEvent(job_id=job.job_id, stage=stage, progress=100 if stage == 5 else 50))
    return job.job_id


async def test_the_sweeper_deletes_what_no_stage_can_need_and_keeps_the_rest(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    artifacts = ArtifactStore(tmp_path / "artifacts")
    pinned = await _job(store, jobs_pb2.STAGE_PINNED)
    failed = await _job(store, jobs_pb2.STAGE_FAILED)
    rendering = await _job(store, jobs_pb2.STAGE_RENDERING)
    unknown = uuid.uuid4().hex  # its row deleted by retention long ago
    for job_id in (pinned, failed, rendering, unknown):
        _files(artifacts, job_id)
    artifacts.cancel(failed)
    sweeper = ArtifactSweeper(store, artifacts, pinned_grace=600, failed_keep=72 * HOUR, interval=1)
    now = (await store.get(pinned)).updated_at

    # Within the grace: nothing goes (a duplicate pin job may still be on its way).
    assert (await sweeper.sweep_once(now + 10)).jobs_removed == []
    # Past the grace: the pinned job's files go; the failed one is kept for its replay window.
    swept = await sweeper.sweep_once(now + 601)
    assert swept.jobs_removed == [pinned] and swept.bytes_freed == 4096
    assert not artifacts.job_dir(pinned).exists() and artifacts.job_dir(failed).exists()
    # Past the replay window: the failed job's files, the unknown folder and the cancel marker go; a job in
    # progress is never touched, however old.
    swept = await sweeper.sweep_once(now + 73 * HOUR)
    assert sorted(swept.jobs_removed) == sorted([failed, unknown]) and swept.markers_removed == 1
    assert not artifacts.is_cancelled(failed)
    assert [j for j, _ in artifacts.jobs()] == [rendering]
    await store.close()


async def test_a_duplicate_pin_job_after_the_clean_up_announces_the_same_token_and_uploads_nothing(
        broker, probe, pinner):
    artifacts, _store, pins = pinner
    job = rendered_pin_job(artifacts, seed=31)
    await broker.publish(broker.topology.jobs_exchange, "pin", job)
    first = await pinned_event(probe, broker.topology.status_queue)
    assert first.stage == jobs_pb2.STAGE_PINNED, first.error
    artifacts.remove_job(job.job_id)  # what the status service's sweeper does once the job is pinned
    uploads = pins.counts["uploads"]

    await broker.publish(broker.topology.jobs_exchange, "pin", job)
    again = await pinned_event(probe, broker.topology.status_queue)
    assert again.stage == jobs_pb2.STAGE_PINNED, again.error
    assert (again.token_uri, again.assets) == (first.token_uri, first.assets)
    assert pins.counts["uploads"] == uploads
    assert await probe.ready(broker.topology.dead_queue(broker.topology.pin_queue)) == 0


async def test_pinning_to_pinata_keeps_no_second_copy_on_local_disk(tmp_path):
    artifacts = ArtifactStore(tmp_path / "artifacts")
    job = rendered_pin_job(artifacts, seed=32)
    local = LocalIpfsStore(tmp_path / "ipfs")
    with running_emulator() as emu:
        backend = PinataBackend(emu.jwt, emu.url, emu.url)
        pins = PinService(backend, PinLedger(tmp_path / "pins.sqlite3", backend.name), local, rate_limit=1000,
                          rate_window=60, monthly_pins=None)
        for ref in job.artifacts:
            path = artifacts.path_of(ref.key)
            await pins.pin(path, ref.content_type, path.name, job.job_id, {})
        await backend.aclose()
        assert emu.stats()["uploads_per_cid"], "nothing reached the backend"
    assert local.pins_count() == 0
    assert sum(f.stat().st_size for f in Path(local.root).rglob("*") if f.is_file()) == 0


@pytest.fixture
def small_volume(tmp_path):
    """A real 8 MiB filesystem (tmpfs) for the data folder, so 'nearly full' is real, not pretended."""
    mount = tmp_path / "volume"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.fail(f"this test mounts a small tmpfs (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill_to(volume: Path, used_percent: float) -> None:
    stat = os.statvfs(volume)
    total, free = stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize
    want_free = total * (100 - used_percent) / 100
    filler = volume / "filler"
    size = filler.stat().st_size if filler.exists() else 0
    with open(filler, "ab") as fh:
        fh.truncate(size)
        fh.write(b"\0" * max(0, int(free - want_free)))


def test_health_degrades_when_nearly_full_and_new_jobs_are_refused_before_full(rabbit_url, small_volume):
    guard = DiskGuard(small_volume, degraded_free_percent=20, refuse_free_percent=10)
    body = {"settings": {"seed": 5}, "wallet": WALLET}
    with live_bridge(rabbit_url, small_volume / "data", disk=guard) as url, httpx.Client(base_url=url) as http:
        health = http.get("/healthz")
        assert health.status_code == 200 and health.json()["checks"]["disk"] is True
        assert health.json()["disk"]["total_bytes"] == 8 * 2**20

        _fill_to(small_volume, 85)  # nearly full: said in health, jobs still taken
        health = http.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert health.json()["checks"]["disk"] is False and health.json()["disk"]["free_percent"] < 20
        assert http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "d-1"}).status_code == 202

        _fill_to(small_volume, 95)  # past the refusal line, still not full
        refused = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "d-2"})
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        error = refused.json()["error"]
        assert error["field"] == "disk" and "full" in error["message"] and "refused" in error["message"]
        assert len(http.get("/v1/jobs").json()["jobs"]) == 1, "a refused submission left a job"

        (small_volume / "filler").unlink()  # space freed: taken again
        assert http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "d-2"}).status_code == 202
        assert http.get("/healthz").status_code == 200
    assert json.dumps(guard.snapshot())
