"""The pin stage against the real broker and the local content-addressed store."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from mintpipe.core.cid import cid_of_file
from mintpipe.core.scenes import settings_hash, validate_settings
from mintpipe.messaging.broker import RETRY_TIERS
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.v1 import broker_pb2, jobs_pb2
from renderer.render import RENDERER_VERSION, render_job

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


def rendered_pin_job(artifacts: ArtifactStore, seed: int = 1) -> broker_pb2.PinJob:
    settings = validate_settings("gen1", {"seed": seed, "frames": 10, "size": 128})
    job_id = uuid.uuid4().hex
    assets = render_job("gen1", settings, artifacts.job_dir(job_id))
    return broker_pb2.PinJob(
        job_id=job_id, scene="gen1", settings_json=json.dumps(settings), wallet=WALLET,
        renderer_version=RENDERER_VERSION, settings_hash=settings_hash("gen1", settings),
        artifacts=[broker_pb2.ArtifactRef(kind=a.kind, key=artifacts.key_of(a.path), content_type=a.content_type,
                                          size=a.size, sha256=a.sha256) for a in assets])


async def pinned_event(probe, queue: str) -> broker_pb2.JobEvent:
    while True:
        event = broker_pb2.JobEvent.FromString((await probe.take(queue, timeout=60)).body)
        if event.stage in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_FAILED):
            return event


async def test_assets_and_metadata_are_pinned_by_content_id_and_the_token_uri_announced(broker, probe, pinner):
    artifacts, store, _pins = pinner
    job = rendered_pin_job(artifacts)
    await broker.publish(broker.topology.jobs_exchange, "pin", job)
    event = await pinned_event(probe, broker.topology.status_queue)
    assert event.stage == jobs_pb2.STAGE_PINNED, event.error
    assert event.token_uri == f"ipfs://{event.assets.metadata}"
    gif = next(a for a in job.artifacts if a.kind == "image")
    assert event.assets.image == cid_of_file(artifacts.path_of(gif.key))
    stored = store.get(event.assets.metadata)
    metadata = json.loads(stored.path.read_bytes())
    assert stored.content_type == "application/json"
    assert metadata["image"] == f"ipfs://{event.assets.image}"
    assert metadata["animation_url"] == f"ipfs://{event.assets.animation}"
    assert metadata["properties"]["renderer_version"] == RENDERER_VERSION


async def test_a_redelivered_pin_job_uploads_nothing_and_announces_the_same_token(broker, probe, pinner):
    artifacts, store, pins = pinner
    job = rendered_pin_job(artifacts, seed=2)
    await broker.publish(broker.topology.jobs_exchange, "pin", job)
    first = await pinned_event(probe, broker.topology.status_queue)
    assert pins.counts["uploads"] == 4  # GIF, MP4, PNG, metadata
    await broker.publish(broker.topology.jobs_exchange, "pin", job)
    second = await pinned_event(probe, broker.topology.status_queue)
    assert second.token_uri == first.token_uri
    assert pins.counts["uploads"] == 4 and pins.counts["skipped_known"] == 4


async def test_a_tampered_artifact_fails_the_job_for_integrity(broker, probe, pinner):
    artifacts, _store, _pins = pinner
    job = rendered_pin_job(artifacts, seed=3)
    preview = next(a for a in job.artifacts if a.kind == "preview")
    artifacts.path_of(preview.key).write_bytes(b"not the rendered preview")
    await broker.publish(broker.topology.jobs_exchange, "pin", job)
    event = await pinned_event(probe, broker.topology.status_queue)
    assert event.stage == jobs_pb2.STAGE_FAILED and "integrity" in event.error
    dead = await probe.take(broker.topology.dead_queue(broker.topology.pin_queue))
    assert "integrity" in dead.headers["x-mintpipe-reason"]


async def test_garbage_is_dead_lettered_with_a_reason(broker, probe, pinner):
    topo = broker.topology
    await broker.publish(topo.jobs_exchange, "pin", broker_pb2.PinJob(job_id="x"))
    dead = await probe.take(topo.dead_queue(topo.pin_queue))
    assert "job_id must be 32 hex digits" in dead.headers["x-mintpipe-reason"]


async def test_a_job_cancelled_by_an_operator_uploads_nothing_and_is_dropped(broker, probe, pinner):
    artifacts, _store, pins = pinner
    cancelled, kept = rendered_pin_job(artifacts, seed=5), rendered_pin_job(artifacts, seed=6)
    artifacts.cancel(cancelled.job_id)  # what the admin cancel route does
    await broker.publish(broker.topology.jobs_exchange, "pin", cancelled)
    await broker.publish(broker.topology.jobs_exchange, "pin", kept)
    event = await pinned_event(probe, broker.topology.status_queue)
    assert event.job_id == kept.job_id and event.stage == jobs_pb2.STAGE_PINNED
    assert pins.counts["uploads"] == 4, "the cancelled job's assets were uploaded"
    topo = broker.topology
    assert await probe.ready(topo.pin_queue) == 0 and await probe.ready(topo.dead_queue(topo.pin_queue)) == 0
    for seconds in RETRY_TIERS:  # acked and dropped, not parked for a retry
        assert await probe.ready(topo.retry_queue(topo.pin_queue, seconds)) == 0
    others = [broker_pb2.JobEvent.FromString(m.body) for m in await probe.drain(topo.status_queue)]
    assert all(e.job_id != cancelled.job_id for e in others)


async def test_a_pinner_cancelled_mid_job_uploads_nothing_more(broker, probe, tmp_path):
    """The cancel lands while the pinner waits on the backend (a slow lookup of the first asset): from then on
    no upload request reaches the backend, the job is dropped, and nothing says it was pinned."""
    from mintpipe.objects.ipfs import LocalIpfsStore
    from mintpipe.pin_ledger import PinLedger
    from pinner.backends import PinataBackend
    from pinner.consumer import pin_consumer
    from pinner.pinning import PinService
    from tests.support.broker import wait_for
    from tests.support.emulator import running_emulator

    artifacts = ArtifactStore(tmp_path / "artifacts")
    job = rendered_pin_job(artifacts, seed=41)
    with running_emulator() as emu:
        backend = PinataBackend(emu.jwt, emu.url, emu.url, timeout=30)
        pins = PinService(backend, PinLedger(tmp_path / "pins.sqlite3", backend.name),
                          LocalIpfsStore(tmp_path / "ipfs"), rate_limit=1000, rate_window=60, monthly_pins=None)
        consumer = pin_consumer(broker, artifacts, pins)
        await consumer.start()
        try:
            emu.fault(delay=2.0)  # the first request (the lookup of the first asset) answers late
            await broker.publish(broker.topology.jobs_exchange, "pin", job)
            await wait_for(lambda: len(emu.requests()) >= 1, timeout=30)
            artifacts.cancel(job.job_id)
            cancelled_at = time.time()
            await wait_for(lambda: consumer.inflight == 0, timeout=30)
            await asyncio.sleep(0.5)
        finally:
            await consumer.stop(2)
            await backend.aclose()
        after = [r for r in emu.requests() if r["at"] > cancelled_at]
        uploads = [r for r in emu.requests() if r["method"] == "POST"]
        assert uploads == [], f"uploaded after the cancel: {uploads}"
        assert all(r["method"] == "GET" for r in after), after
        assert emu.stats()["uploads_per_cid"] == {}
    topo = broker.topology
    events = [broker_pb2.JobEvent.FromString(m.body) for m in await probe.drain(topo.status_queue)]
    assert jobs_pb2.STAGE_PINNED not in [e.stage for e in events]
    assert await probe.ready(topo.pin_queue) == 0 and await probe.ready(topo.dead_queue(topo.pin_queue)) == 0


@pytest.mark.parametrize("api", ["legacy", "v3"])
async def test_metadata_is_uploaded_as_a_file_never_through_pin_json(broker, probe, tmp_path, api):
    """Through pinJSONToIPFS, Pinata would serialise the JSON its own way and answer another CID than the one
    computed here from the canonical bytes: the emulator's request log shows it is never called."""
    from mintpipe.core.cid import cid_of_bytes
    from mintpipe.objects.ipfs import LocalIpfsStore
    from mintpipe.pin_ledger import PinLedger
    from pinner.backends import PinataBackend
    from pinner.consumer import pin_consumer
    from pinner.pinning import PinService
    from tests.support.emulator import running_emulator

    artifacts = ArtifactStore(tmp_path / "artifacts")
    job = rendered_pin_job(artifacts, seed=43)
    with running_emulator() as emu:
        backend = PinataBackend(emu.jwt, emu.url, emu.url, api=api)
        pins = PinService(backend, PinLedger(tmp_path / "pins.sqlite3", backend.name),
                          LocalIpfsStore(tmp_path / "ipfs"), rate_limit=1000, rate_window=60, monthly_pins=None)
        consumer = pin_consumer(broker, artifacts, pins)
        await consumer.start()
        try:
            await broker.publish(broker.topology.jobs_exchange, "pin", job)
            event = await pinned_event(probe, broker.topology.status_queue)
        finally:
            await consumer.stop(2)
            await backend.aclose()
        requests = emu.requests()
        async with httpx.AsyncClient() as http:
            metadata = await http.get(f"{emu.url}/ipfs/{event.assets.metadata}", timeout=5)
    assert event.stage == jobs_pb2.STAGE_PINNED, event.error
    paths = [r["path"] for r in requests]
    assert not any("pinJSONToIPFS" in p for p in paths), paths
    upload_path = "/pinning/pinFileToIPFS" if api == "legacy" else "/v3/files"
    assert sum(1 for r in requests if r["method"] == "POST" and r["path"] == upload_path) == 4  # 3 assets + metadata
    assert cid_of_bytes(metadata.content) == event.assets.metadata
    assert json.loads(metadata.content)["image"] == f"ipfs://{event.assets.image}"
