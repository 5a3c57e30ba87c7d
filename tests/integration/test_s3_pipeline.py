"""Renderer -> pinner -> status through a real S3 server (SeaweedFS), each service with its own empty data folder:
nothing crosses services but the broker and the object store (MINTPIPE_ARTIFACTS_URL)."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest

from mintpipe.core.cid import cid_of_bytes
from mintpipe.objects.artifacts import open_artifacts
from mintpipe.objects.ipfs import open_ipfs
from mintpipe.pin_ledger import PinLedger
from mintpipe.v1 import broker_pb2, gateway_pb2_grpc, jobs_pb2
from pinner.backends import LocalBackend
from pinner.consumer import pin_consumer
from pinner.pinning import PinService
from renderer.consumer import render_consumer
from status.app import BridgeDeps, create_app
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from tests.integration.test_renderer_consumer import render_job
from tests.support.broker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def hosts(tmp_path, s3_env, monkeypatch):
    """Each service's own data folder; the AWS variables and MINTPIPE_ARTIFACTS_URL as every service gets them."""
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    return {name: tmp_path / name for name in ("renderer", "pinner", "status")}


async def events_until(probe, queue: str, stages: set[int]) -> list[broker_pb2.JobEvent]:
    seen = []
    while True:
        event = broker_pb2.JobEvent.FromString((await probe.take(queue, timeout=60)).body)
        seen.append(event)
        if event.stage in stages:
            return seen


async def test_a_job_is_pinned_through_the_object_store_and_served_by_status_with_no_shared_folder(
        broker, probe, hosts, s3_url, seaweed):
    url = s3_url
    renderer_artifacts = open_artifacts(url, hosts["renderer"])
    pinner_artifacts, pinner_ipfs = open_artifacts(url, hosts["pinner"]), open_ipfs(url, hosts["pinner"])
    status_ipfs = open_ipfs(url, hosts["status"])
    renderer = render_consumer(broker, renderer_artifacts)
    pins = PinService(LocalBackend(pinner_ipfs), PinLedger(hosts["pinner"] / "pins.sqlite3", "local"), pinner_ipfs,
                      rate_limit=100, rate_window=60, monthly_pins=None)
    pinner = pin_consumer(broker, pinner_artifacts, pins)
    await renderer.start()
    await pinner.start()
    try:
        job = render_job(seed=11, frames=12, size=128)
        await broker.publish(broker.topology.jobs_exchange, "render", job)
        events = await events_until(probe, broker.topology.status_queue,
                                    {jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_FAILED})
        await wait_for(lambda: renderer.inflight == 0 and pinner.inflight == 0)
    finally:
        await pinner.stop(5)
        await renderer.stop(5)
    pinned = events[-1]
    assert pinned.stage == jobs_pb2.STAGE_PINNED, pinned.error
    assert jobs_pb2.STAGE_RENDERED in [e.stage for e in events]

    # Nothing was left in (or ever read from) a shared folder: the renderer's and pinner's scratch are empty,
    # and no service has a local artifacts or ipfs folder at all.
    for name, folder in hosts.items():
        assert files_under(folder / "scratch") == [], f"{name} left working files behind"
        assert not (folder / "artifacts").exists() and not (folder / "ipfs").exists()
    keys = seaweed.keys(url.removeprefix("s3://").split("/", 1)[0], url.split("/", 3)[3] + "/")
    assert any(k.endswith(f"artifacts/{job.job_id}/manifest.json") for k in keys)
    assert sum(1 for k in keys if "/ipfs/" in k) == 4  # GIF, MP4, PNG and the metadata

    # Status, on its own data folder, serves every pinned CID from the object store in its own content type.
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # no gateway needed for /ipfs
    store = JobStore(hosts["status"] / "jobs.sqlite3")
    await store.open()
    app = create_app(BridgeDeps(store=store, bus=JobBus(), gateway=gateway_pb2_grpc.GatewayServiceStub(channel),
                                ipfs=status_ipfs, checks={}, ipfs_gateway="https://gateway.example"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge") as client:
            gif = await client.get(f"/ipfs/{pinned.assets.image}")
            assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
            assert cid_of_bytes(gif.content) == pinned.assets.image and gif.content.startswith(b"GIF89a")
            mp4 = await client.get(f"/ipfs/{pinned.assets.animation}")
            assert mp4.headers["content-type"] == "video/mp4" and cid_of_bytes(mp4.content) == pinned.assets.animation
            # Byte ranges, as a browser's video player asks for them (mobile Safari plays nothing without).
            head = await client.get(f"/ipfs/{pinned.assets.animation}", headers={"Range": "bytes=4-11"})
            assert head.status_code == 206 and head.content == mp4.content[4:12] == b"ftypisom"
            assert head.headers["content-range"] == f"bytes 4-11/{len(mp4.content)}"
            tail = await client.get(f"/ipfs/{pinned.assets.animation}", headers={"Range": "bytes=-100"})
            assert tail.status_code == 206 and tail.content == mp4.content[-100:]
            rest = await client.get(f"/ipfs/{pinned.assets.animation}", headers={"Range": "bytes=1000-"})
            assert rest.status_code == 206 and rest.content == mp4.content[1000:]
            past = await client.get(f"/ipfs/{pinned.assets.animation}",
                                    headers={"Range": f"bytes={len(mp4.content)}-"})
            assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(mp4.content)}"
            meta = await client.get(f"/{pinned.token_uri.replace('ipfs://', 'ipfs/')}")
            assert meta.headers["content-type"] == "application/json"
            assert meta.json()["image"] == f"ipfs://{pinned.assets.image}"
            # A CID pinned on another backend (not in the object store) keeps the gateway redirect.
            elsewhere = cid_of_bytes(b"pinned on pinata, not here")
            moved = await client.get(f"/ipfs/{elsewhere}")
            assert moved.status_code == 307 and moved.headers["location"].endswith(f"/ipfs/{elsewhere}")
    finally:
        await store.close()
        await channel.close()


async def test_a_cancel_written_on_the_status_host_stops_a_render_on_another(broker, probe, hosts, s3_url):
    renderer_artifacts = open_artifacts(s3_url, hosts["renderer"])
    status_artifacts = open_artifacts(s3_url, hosts["status"])
    renderer = render_consumer(broker, renderer_artifacts)
    await renderer.start()
    try:
        job = render_job(seed=6, frames=240, size=1024)  # ~15 s to render whole
        await broker.publish(broker.topology.jobs_exchange, "render", job)
        first = broker_pb2.JobEvent.FromString((await probe.take(broker.topology.status_queue, timeout=30)).body)
        assert first.stage == jobs_pb2.STAGE_RENDERING
        status_artifacts.cancel(job.job_id)  # what the admin cancel route does, on the status host's store
        await wait_for(lambda: renderer.inflight == 0, timeout=10)
    finally:
        await renderer.stop(5)
    assert await probe.ready(broker.topology.pin_queue) == 0, "a cancelled job was handed to the pin stage"
    assert not renderer_artifacts.has_job(job.job_id), "the cancelled render uploaded files"
    assert files_under(hosts["renderer"] / "scratch") == []
    events = [broker_pb2.JobEvent.FromString(m.body) for m in await probe.drain(broker.topology.status_queue)]
    assert all(e.stage == jobs_pb2.STAGE_RENDERING for e in events)


async def test_a_redelivered_render_job_hands_over_the_stored_files_without_uploading_again(broker, probe, hosts,
                                                                                            s3_url):
    from mintpipe.objects.s3 import TRAFFIC

    renderer = render_consumer(broker, open_artifacts(s3_url, hosts["renderer"]))
    await renderer.start()
    try:
        job = render_job(seed=12, frames=12, size=128)
        await broker.publish(broker.topology.jobs_exchange, "render", job)
        first = broker_pb2.PinJob.FromString((await probe.take(broker.topology.pin_queue, timeout=60)).body)
        await wait_for(lambda: renderer.inflight == 0)
        before = TRAFFIC.snapshot()["by_operation"]
        await broker.publish(broker.topology.jobs_exchange, "render", job)  # a duplicate delivery
        again = broker_pb2.PinJob.FromString((await probe.take(broker.topology.pin_queue, timeout=60)).body)
        await wait_for(lambda: renderer.inflight == 0)
        after = TRAFFIC.snapshot()["by_operation"]
    finally:
        await renderer.stop(5)
    assert again == first
    for operation in ("PutObject", "UploadPart", "CreateMultipartUpload"):
        assert after.get(operation, 0) == before.get(operation, 0), f"the duplicate sent {operation}"
