"""The gateway's SubmitJob over real gRPC, with the real status service and the real broker."""

from __future__ import annotations

import json

import grpc
import pytest

from mintpipe.v1 import broker_pb2, gateway_pb2, jobs_pb2, status_pb2
from tests.support.gateway import running_gateway

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture
async def gateway(broker, tmp_path):
    async with running_gateway(broker, tmp_path) as side:
        yield side.gateway, side.status, side.store


def submit(settings: dict, wallet: str = WALLET, key: str = "") -> gateway_pb2.SubmitJobRequest:
    return gateway_pb2.SubmitJobRequest(settings_json=json.dumps(settings), wallet=wallet, idempotency_key=key)


async def test_an_accepted_job_is_stored_and_its_render_job_is_on_the_queue(gateway, broker, probe):
    stub, status, _store = gateway
    reply = await stub.SubmitJob(submit({"seed": 3}, wallet=WALLET.lower()), timeout=10)
    assert reply.created and reply.stage == jobs_pb2.STAGE_QUEUED
    message = await probe.take(broker.topology.render_queue, timeout=5)
    render = broker_pb2.RenderJob.FromString(message.body)
    assert render.job_id == reply.job_id and render.wallet == WALLET  # checksummed
    assert json.loads(render.settings_json)["seed"] == 3
    assert json.loads(render.settings_json)["frames"] == 100  # defaults filled before queueing
    job = await status.GetJob(status_pb2.GetJobRequest(job_id=reply.job_id))
    assert job.stage == jobs_pb2.STAGE_QUEUED and job.wallet == WALLET


async def test_the_same_key_publishes_once_and_another_body_is_already_exists(gateway, broker, probe):
    stub, _status, _store = gateway
    first = await stub.SubmitJob(submit({"seed": 1}, key="k-1"), timeout=10)
    again = await stub.SubmitJob(submit({"seed": 1}, key="k-1"), timeout=10)
    assert again.job_id == first.job_id and not again.created
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitJob(submit({"seed": 2}, key="k-1"), timeout=10)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert info.value.details().startswith("idempotency_key: ")
    assert len(await probe.drain(broker.topology.render_queue)) == 1


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (submit({"seed": 1}, wallet="0xnope"), "wallet"),
        (submit({"seed": 1}, wallet=""), "wallet"),
        (submit({"frames": 3}), "settings.frames"),
        (submit({"seed": "seven"}), "settings.seed"),
        (gateway_pb2.SubmitJobRequest(settings_json="[1, 2]", wallet=WALLET), "settings"),
        (gateway_pb2.SubmitJobRequest(settings_json="{oops", wallet=WALLET), "settings"),
        (gateway_pb2.SubmitJobRequest(scene="no-such-scene", settings_json="{}", wallet=WALLET), "scene"),
        (submit({"seed": 1}, key="has space"), "idempotency_key"),
    ],
)
async def test_bad_requests_are_invalid_argument_naming_the_field_and_queue_nothing(
        gateway, broker, probe, request_, field):
    stub, _status, store = gateway
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitJob(request_, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().split(": ", 1)[0] == field, info.value.details()
    assert await probe.ready(broker.topology.render_queue) == 0
    assert (await store.list(limit=10))[0] == []
