"""The render stage against the real broker: acks only after its effect; garbage is dead-lettered."""

from __future__ import annotations

import json
import uuid

import pytest

from mintpipe.messaging.broker import RETRY_TIERS
from mintpipe.objects.artifacts import ArtifactStore, sha256_file
from mintpipe.v1 import broker_pb2, jobs_pb2
from renderer.consumer import render_consumer
from tests.support.broker import wait_for

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


def render_job(**settings) -> broker_pb2.RenderJob:
    from mintpipe.core.scenes import validate_settings

    full = validate_settings("gen1", settings)
    return broker_pb2.RenderJob(job_id=uuid.uuid4().hex, scene="gen1", settings_json=json.dumps(full),
                                wallet=WALLET)


def events_of(messages) -> list[broker_pb2.JobEvent]:
    return [broker_pb2.JobEvent.FromString(m.body) for m in messages]


async def test_a_render_job_becomes_files_events_and_a_pin_job(broker, probe, renderer):
    consumer, artifacts = renderer
    job = render_job(seed=4, frames=12, size=128)
    await broker.publish(broker.topology.jobs_exchange, "render", job)

    pin = broker_pb2.PinJob.FromString((await probe.take(broker.topology.pin_queue, timeout=60)).body)
    assert pin.job_id == job.job_id and pin.wallet == WALLET and pin.settings_hash
    assert {a.kind for a in pin.artifacts} == {"image", "animation", "preview"}
    for ref in pin.artifacts:
        path = artifacts.path_of(ref.key)
        assert path.stat().st_size == ref.size and sha256_file(path) == ref.sha256

    await wait_for(lambda: consumer.inflight == 0)
    events = events_of(await probe.drain(broker.topology.status_queue))
    stages = [e.stage for e in events]
    assert stages[0] == jobs_pb2.STAGE_RENDERING and stages[-1] == jobs_pb2.STAGE_RENDERED
    progress = [e.progress for e in events]
    assert progress == sorted(progress) and len(events) >= 3
    assert await probe.ready(broker.topology.render_queue) == 0


async def test_nothing_is_acked_before_the_effect_and_a_stopped_replica_hands_the_job_back(broker, probe, renderer):
    consumer, _ = renderer
    job = render_job(seed=9, frames=120, size=512)
    await broker.publish(broker.topology.jobs_exchange, "render", job)
    first = broker_pb2.JobEvent.FromString((await probe.take(broker.topology.status_queue, timeout=30)).body)
    assert first.stage == jobs_pb2.STAGE_RENDERING
    # Mid-render: the job is delivered but not acked (nothing ready, nothing handed on yet).
    assert consumer.inflight == 1 and await probe.ready(broker.topology.render_queue) == 0
    await consumer.stop(grace=0)
    assert await wait_for(lambda: probe.ready(broker.topology.render_queue)) == 1
    assert await probe.ready(broker.topology.pin_queue) == 0


async def test_garbage_is_dead_lettered_with_a_reason_and_the_next_job_still_renders(broker, probe, renderer):
    topo = broker.topology
    await broker.publish(topo.jobs_exchange, "render", b"definitely not a render job \x00\xff")
    dead = await probe.take(topo.dead_queue(topo.render_queue))
    assert "not a valid mintpipe.v1.RenderJob" in dead.headers["x-mintpipe-reason"]

    job = render_job(seed=2, frames=10, size=128)
    await broker.publish(topo.jobs_exchange, "render", job)
    pin = broker_pb2.PinJob.FromString((await probe.take(topo.pin_queue, timeout=60)).body)
    assert pin.job_id == job.job_id


async def test_settings_the_renderer_refuses_fail_the_job_with_a_reason(broker, probe, renderer):
    topo = broker.topology
    job = broker_pb2.RenderJob(job_id=uuid.uuid4().hex, scene="gen1", settings_json='{"frames": 5}',
                               wallet=WALLET)
    await broker.publish(topo.jobs_exchange, "render", job)
    dead = await probe.take(topo.dead_queue(topo.render_queue))
    assert "settings.frames" in dead.headers["x-mintpipe-reason"]
    failed = [e for e in events_of(await probe.drain(topo.status_queue)) if e.stage == jobs_pb2.STAGE_FAILED]
    assert failed and failed[0].job_id == job.job_id and "settings.frames" in failed[0].error


async def test_a_render_past_its_deadline_stops_and_is_retried_then_failed_with_the_reason(broker, probe, tmp_path):
    # The deadline keeps a render inside RabbitMQ's consumer timeout; here it is tiny so every attempt overruns.
    artifacts = ArtifactStore(tmp_path / "slow")
    consumer = render_consumer(broker, artifacts, deadline=0.3, max_attempts=2)
    await consumer.start()
    job = render_job(seed=5, frames=240, size=1024)
    await broker.publish(broker.topology.jobs_exchange, "render", job)

    topo = broker.topology
    dead = await probe.take(topo.dead_queue(topo.render_queue), timeout=30)
    reason = "gave up after 2 attempts: render exceeded its 0.3 s deadline (RENDERER_DEADLINE_SECONDS)"
    assert dead.headers["x-mintpipe-reason"] == reason
    assert await probe.ready(topo.pin_queue) == 0, "a render that overran was handed to the pin stage"
    events = events_of(await probe.drain(topo.status_queue))
    assert events[-1].stage == jobs_pb2.STAGE_FAILED and events[-1].error == reason

    # The render thread stopped within a frame and cleared its half-written files (an unstopped render of this
    # size would hold them for ~15 s more).
    job_dir = artifacts.job_dir(job.job_id)
    await wait_for(lambda: not any(job_dir.iterdir()), timeout=5)
    assert artifacts.read_manifest(job.job_id) is None
    await consumer.stop(1)


async def test_an_operator_cancel_stops_a_render_midway_and_drops_the_job(broker, probe, renderer):
    consumer, artifacts = renderer
    job = render_job(seed=6, frames=240, size=1024)  # ~15 s to render whole
    await broker.publish(broker.topology.jobs_exchange, "render", job)
    first = broker_pb2.JobEvent.FromString((await probe.take(broker.topology.status_queue, timeout=30)).body)
    assert first.stage == jobs_pb2.STAGE_RENDERING
    artifacts.cancel(job.job_id)  # what the admin cancel route does

    await wait_for(lambda: consumer.inflight == 0, timeout=5)
    job_dir = artifacts.job_dir(job.job_id)
    assert not any(job_dir.iterdir()), "the cancelled render left files behind"
    topo = broker.topology
    assert await probe.ready(topo.pin_queue) == 0, "a cancelled job was handed to the pin stage"
    assert await probe.ready(topo.render_queue) == 0 and await probe.ready(topo.dead_queue(topo.render_queue)) == 0
    for seconds in RETRY_TIERS:  # acked and dropped, not parked for a retry
        assert await probe.ready(topo.retry_queue(topo.render_queue, seconds)) == 0
    events = events_of(await probe.drain(topo.status_queue))
    assert all(e.stage == jobs_pb2.STAGE_RENDERING for e in events)


async def test_a_manifest_whose_files_changed_is_not_trusted_the_job_is_rendered_again(broker, probe, renderer):
    # A first attempt left its manifest; then a file was cut short (the old shared temp name did exactly this).
    _consumer, artifacts = renderer
    job = render_job(seed=8, frames=12, size=128)
    await broker.publish(broker.topology.jobs_exchange, "render", job)
    first = broker_pb2.PinJob.FromString((await probe.take(broker.topology.pin_queue, timeout=60)).body)
    gif = next(a for a in first.artifacts if a.kind == "image")
    path = artifacts.path_of(gif.key)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])

    await broker.publish(broker.topology.jobs_exchange, "render", job)  # a redelivery, or a replay
    again = broker_pb2.PinJob.FromString((await probe.take(broker.topology.pin_queue, timeout=60)).body)
    assert again.job_id == job.job_id
    for ref in again.artifacts:
        assert sha256_file(artifacts.path_of(ref.key)) == ref.sha256, f"{ref.kind} handed over not matching"
    assert path.read_bytes() == whole, "the cut file was not rendered again"
    events = events_of(await probe.drain(broker.topology.status_queue))
    assert [e.stage for e in events].count(jobs_pb2.STAGE_RENDERING) >= 2, "the second delivery did not render"
