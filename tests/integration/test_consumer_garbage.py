"""Every consumer (render, pin, status events) against garbage on the real broker: each kind lands in
`<queue>.dead` with an `x-mintpipe-reason` naming the problem, at once (no retry tier), and the consumer goes
on to process the next valid message."""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass

import aio_pika
import pytest

from mintpipe.core.scenes import settings_hash, validate_settings
from mintpipe.messaging.broker import PROTOBUF, RETRY_TIERS
from mintpipe.messaging.events import EventPublisher
from mintpipe.objects.artifacts import ArtifactStore
from mintpipe.v1 import broker_pb2, jobs_pb2
from renderer.render import RENDERER_VERSION, render_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
WALLET = "0x000000000000000000000000000000000000dEaD"
SETTINGS = validate_settings("gen1", {"seed": 5, "frames": 10, "size": 128})


def valid_render() -> broker_pb2.RenderJob:
    return broker_pb2.RenderJob(job_id=uuid.uuid4().hex, scene="gen1", settings_json=json.dumps(SETTINGS),
                                wallet=WALLET)


def valid_pin(artifacts: ArtifactStore | None = None) -> broker_pb2.PinJob:
    job_id = uuid.uuid4().hex
    refs = [broker_pb2.ArtifactRef(kind=kind, key=f"{job_id}/{kind}", content_type="x/y", size=1, sha256="0" * 64)
            for kind in ("image", "animation", "preview")]
    if artifacts is not None:
        assets = render_job("gen1", SETTINGS, artifacts.job_dir(job_id))
        refs = [broker_pb2.ArtifactRef(kind=a.kind, key=artifacts.key_of(a.path), content_type=a.content_type,
                                       size=a.size, sha256=a.sha256) for a in assets]
    return broker_pb2.PinJob(job_id=job_id, scene="gen1", settings_json=json.dumps(SETTINGS), wallet=WALLET,
                             renderer_version=RENDERER_VERSION, settings_hash=settings_hash("gen1", SETTINGS),
                             artifacts=refs)


def valid_event() -> broker_pb2.JobEvent:
    return broker_pb2.JobEvent(event_id=uuid.uuid4().hex, job_id=uuid.uuid4().hex,
                               stage=jobs_pb2.STAGE_RENDERING, progress=5, source="test")


@dataclass(frozen=True)
class Garbage:
    body: bytes
    type_: str | None  # the AMQP `type` property; None leaves it out
    reason: str  # what the dead letter's reason must say


def garbage_for(queue: str, kind: str) -> Garbage:
    """Garbage of `kind` for the consumer of `queue` (render, pin or events)."""
    own = {"render": broker_pb2.RenderJob, "pin": broker_pb2.PinJob, "events": broker_pb2.JobEvent}[queue]
    name = own.DESCRIPTOR.full_name
    valid = {"render": valid_render, "pin": valid_pin, "events": valid_event}[queue]()
    if kind == "empty-body":
        return Garbage(b"", None, "job_id is empty" if queue == "events" else "job_id must be 32 hex digits")
    if kind == "random-bytes":
        # A truncated varint after random bytes: never a parseable message, whatever the seed.
        return Garbage(random.Random(7).randbytes(200) + b"\x08\xff", None, f"body is not a valid {name}")
    if kind == "wrong-type-header":
        return Garbage(valid.SerializeToString(), "mintpipe.v1.SomethingElse",
                       f"expected a {name} message, got type 'mintpipe.v1.SomethingElse'")
    if kind == "other-message-untyped":
        # A well-formed protobuf of another pipeline type, sent without its type header: it parses, by luck of
        # field numbers, into something that must still be refused by the consumer's checks.
        other = {"render": valid_event(), "pin": valid_event(), "events": valid_render()}[queue]
        reason = {"render": "settings_json is empty", "pin": "settings_json is empty",
                  "events": "job_id must be 32 hex digits"}[queue]
        return Garbage(other.SerializeToString(), None, f"invalid {name}: {reason}")
    if kind == "empty-job-id":
        valid.job_id = ""
        return Garbage(valid.SerializeToString(), name,
                       "job_id is empty" if queue == "events" else "job_id must be 32 hex digits")
    if kind == "path-job-id":  # the right length, not hex: must never reach the file system
        valid.job_id = "../../../../../../../../etc/pass"
        return Garbage(valid.SerializeToString(), name, "job_id must be 32 hex digits")
    raise AssertionError(kind)


KINDS = ["empty-body", "random-bytes", "wrong-type-header", "other-message-untyped", "empty-job-id", "path-job-id"]


async def publish_raw(broker, exchange: str, key: str, garbage: Garbage) -> None:
    """Straight onto the exchange, as a buggy or hostile producer would (no helper fills in the type)."""
    channel = await broker.channel(1)
    try:
        ex = await channel.get_exchange(exchange, ensure=False)
        await ex.publish(aio_pika.Message(garbage.body, type=garbage.type_, content_type=PROTOBUF,
                                          delivery_mode=aio_pika.DeliveryMode.PERSISTENT), key)
    finally:
        await channel.close()


async def assert_dead_lettered_at_once(probe, broker, queue: str, garbage: Garbage) -> None:
    dead = await probe.take(broker.topology.dead_queue(queue), timeout=20)
    assert dead.body == garbage.body
    assert garbage.reason in dead.headers["x-mintpipe-reason"], dead.headers["x-mintpipe-reason"]
    for seconds in RETRY_TIERS:  # garbage is never retried: retrying cannot make it readable
        assert await probe.ready(broker.topology.retry_queue(queue, seconds)) == 0


async def next_event(probe, queue: str, job_id: str, stage: int) -> broker_pb2.JobEvent:
    while True:
        event = broker_pb2.JobEvent.FromString((await probe.take(queue, timeout=60)).body)
        if event.job_id == job_id and event.stage in (stage, jobs_pb2.STAGE_FAILED):
            return event


@pytest.mark.parametrize("kind", KINDS)
async def test_render_queue_garbage_is_dead_lettered_and_the_next_job_renders(broker, probe, renderer, kind):
    _consumer, artifacts = renderer
    topo = broker.topology
    garbage = garbage_for("render", kind)
    await publish_raw(broker, topo.jobs_exchange, "render", garbage)
    await assert_dead_lettered_at_once(probe, broker, topo.render_queue, garbage)
    assert not any(p.name == "etc" for p in artifacts.root.rglob("*")), "a hostile job id reached the file system"

    job = valid_render()
    await broker.publish(topo.jobs_exchange, "render", job)
    pin = broker_pb2.PinJob.FromString((await probe.take(topo.pin_queue, timeout=60)).body)
    assert pin.job_id == job.job_id
    assert await probe.ready(topo.dead_queue(topo.render_queue)) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_pin_queue_garbage_is_dead_lettered_and_the_next_job_pins(broker, probe, pinner, kind):
    artifacts, _store, _pins = pinner
    topo = broker.topology
    garbage = garbage_for("pin", kind)
    await publish_raw(broker, topo.jobs_exchange, "pin", garbage)
    await assert_dead_lettered_at_once(probe, broker, topo.pin_queue, garbage)

    job = valid_pin(artifacts)
    await broker.publish(topo.jobs_exchange, "pin", job)
    event = await next_event(probe, topo.status_queue, job.job_id, jobs_pb2.STAGE_PINNED)
    assert event.stage == jobs_pb2.STAGE_PINNED, event.error
    assert await probe.ready(topo.dead_queue(topo.pin_queue)) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_status_queue_garbage_is_dead_lettered_and_the_next_event_is_applied(broker, probe, status_side,
                                                                                   kind):
    store, _consumer = status_side
    topo = broker.topology
    garbage = garbage_for("events", kind)
    await publish_raw(broker, topo.events_exchange, "job.rendering", garbage)
    await assert_dead_lettered_at_once(probe, broker, topo.status_queue, garbage)

    job, _ = await store.reserve(f"k-{kind}", "a" * 64, WALLET, "gen1", "{}")
    await EventPublisher(broker, "test").emit(job.job_id, jobs_pb2.STAGE_RENDERING, 5)
    # Polled against a deadline, not a number of looks: the store commits on its own writer thread
    # (mintpipe.db.group_commit), so reads no longer queue behind the event's commit, and 200 looks (~80 ms here)
    # were shorter than one fsync on a busy disk.
    deadline = time.monotonic() + 20
    while (await store.get(job.job_id)).stage != jobs_pb2.STAGE_RENDERING:
        if time.monotonic() > deadline:
            raise AssertionError("the event after the garbage was not applied")
        await probe.ready(topo.status_queue)  # a broker round trip between looks
    assert await probe.ready(topo.dead_queue(topo.status_queue)) == 0
