"""gRPC calls with missing, absurd or undecodable fields, to the gateway and the status service over real gRPC
(real broker, real SQLite store): INVALID_ARGUMENT whose details start with the offending field, and nothing
stored or queued."""

from __future__ import annotations

import json

import grpc
import pytest

from gateway.service import GatewayService
from mintpipe.rpc.server import GrpcServer
from mintpipe.v1 import broker_pb2, gateway_pb2, gateway_pb2_grpc, jobs_pb2, status_pb2, status_pb2_grpc
from status.grpc_api import StatusService
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
WALLET = "0x000000000000000000000000000000000000dEaD"
MB = 1 << 20


def nested(depth: int) -> str:
    return '{"seed": 1, "palette": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture
async def services(broker, tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    bus = JobBus()
    status_server = GrpcServer("127.0.0.1", free_port(), ["mintpipe.v1.StatusService"])
    status_pb2_grpc.add_StatusServiceServicer_to_server(StatusService(store, bus), status_server.server)
    await status_server.start({})
    status_channel = grpc.aio.insecure_channel(f"127.0.0.1:{status_server.port}",
                                               options=[("grpc.max_send_message_length", 32 * MB)])
    gateway_server = GrpcServer("127.0.0.1", free_port(), ["mintpipe.v1.GatewayService"])
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(
        GatewayService(broker, status_pb2_grpc.StatusServiceStub(status_channel)), gateway_server.server)
    await gateway_server.start({})
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway_server.port}",
                                        options=[("grpc.max_send_message_length", 32 * MB)])
    yield channel, status_channel, store, bus
    await channel.close()
    await status_channel.close()
    for server in (gateway_server, status_server):
        await server.begin_shutdown()
        await server.stop(0)
    await store.close()


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        result = call()
        if hasattr(result, "read"):  # server streaming: the error comes with the first read
            await result.read()
        else:
            await result
    return info.value


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (gateway_pb2.SubmitJobRequest(), "wallet"),  # nothing at all
        (gateway_pb2.SubmitJobRequest(settings_json="{}", wallet="0x" + "a" * 5000), "wallet"),
        (gateway_pb2.SubmitJobRequest(settings_json="x" * MB, wallet=WALLET), "settings"),
        (gateway_pb2.SubmitJobRequest(settings_json=nested(1000), wallet=WALLET), "settings"),
        (gateway_pb2.SubmitJobRequest(settings_json='{"seed": ' + "9" * 5000 + "}", wallet=WALLET), "settings"),
        (gateway_pb2.SubmitJobRequest(settings_json='{"seed": NaN}', wallet=WALLET), "settings"),
        (gateway_pb2.SubmitJobRequest(settings_json='"{}"', wallet=WALLET), "settings"),
        (gateway_pb2.SubmitJobRequest(scene="s" * 10_000, settings_json="{}", wallet=WALLET), "scene"),
        (gateway_pb2.SubmitJobRequest(settings_json="{}", wallet=WALLET, idempotency_key="k" * 300),
         "idempotency_key"),
        (gateway_pb2.SubmitJobRequest(settings_json="{}", wallet=WALLET, idempotency_key="tab\tkey"),
         "idempotency_key"),
    ],
    ids=["empty", "huge-wallet", "1MB-settings", "nested-1000", "5000-digit-int", "nan", "settings-not-object",
         "10k-scene", "300-char-key", "control-char-key"],
)
async def test_submit_job_refuses_absurd_fields_naming_them(services, broker, probe, request_, field):
    channel, _status, store, _bus = services
    error = await refused(lambda: gateway_pb2_grpc.GatewayServiceStub(channel).SubmitJob(request_, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().split(": ", 1)[0] == field, error.details()
    assert len(error.details()) < 500  # says what is wrong without echoing the whole input back
    assert await probe.ready(broker.topology.render_queue) == 0
    assert (await store.list(limit=10))[0] == []


async def test_a_10_mb_submission_is_refused_by_the_transport_before_any_work(services, broker, probe):
    channel, _status, store, _bus = services
    error = await refused(lambda: gateway_pb2_grpc.GatewayServiceStub(channel).SubmitJob(
        gateway_pb2.SubmitJobRequest(settings_json="x" * (10 * MB), wallet=WALLET), timeout=20))
    # gRPC's own receive cap (4 MB) answers first: RESOURCE_EXHAUSTED is gRPC's status for an oversized message.
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    assert await probe.ready(broker.topology.render_queue) == 0
    assert (await store.list(limit=10))[0] == []


STATUS_CALLS = [
    ("GetJob", status_pb2.GetJobRequest(), "job_id"),
    ("GetJob", status_pb2.GetJobRequest(job_id="a" * 300), "job_id"),
    ("GetJob", status_pb2.GetJobRequest(job_id="a" * 32 + "\n"), "job_id"),
    ("GetJob", status_pb2.GetJobRequest(job_id="../../etc/passwd"), "job_id"),
    ("WatchJob", status_pb2.WatchJobRequest(job_id=""), "job_id"),
    ("WatchJob", status_pb2.WatchJobRequest(job_id="Z" * 32), "job_id"),
    ("ListJobs", status_pb2.ListJobsRequest(limit=2**32 - 1), "limit"),
    ("ListJobs", status_pb2.ListJobsRequest(limit=101), "limit"),
    ("ListJobs", status_pb2.ListJobsRequest(stage=99), "stage"),
    ("ListJobs", status_pb2.ListJobsRequest(cursor="x" * 10_000), "cursor"),
    ("ListJobs", status_pb2.ListJobsRequest(wallet="not a wallet"), "wallet"),
    ("MarkPublished", status_pb2.MarkPublishedRequest(job_id="x"), "job_id"),
    ("DiscardJob", status_pb2.DiscardJobRequest(job_id=""), "job_id"),
]
GOOD_RESERVATION = {"idempotency_key": "k", "request_hash": "a" * 64, "wallet": WALLET, "scene": "gen1",
                    "settings_json": json.dumps({"seed": 1})}
RESERVATIONS = [
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"idempotency_key": "k" * 10_000}, "idempotency_key"),
    ({"request_hash": "nope"}, "request_hash"),
    ({"wallet": "junk"}, "wallet"),
    ({"wallet": WALLET.lower()}, "wallet"),  # the gateway always sends the checksummed form
    ({"scene": "s" * 300}, "scene"),
    ({"settings_json": "x" * MB}, "settings_json"),
    ({"settings_json": "not json"}, "settings_json"),
    ({"settings_json": nested(1000)}, "settings_json"),
    ({"settings_json": '{"frames": 3}'}, "settings.frames"),
]


@pytest.mark.parametrize(("method", "request_", "field"), STATUS_CALLS, ids=[
    f"{m}-{i}" for i, (m, _, _) in enumerate(STATUS_CALLS)])
async def test_status_calls_refuse_absurd_fields_naming_them(services, method, request_, field):
    _channel, status_channel, _store, _bus = services
    stub = status_pb2_grpc.StatusServiceStub(status_channel)
    error = await refused(lambda: getattr(stub, method)(request_, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().split(": ", 1)[0] == field, error.details()


@pytest.mark.parametrize(("change", "field"), RESERVATIONS, ids=[f for _, f in RESERVATIONS])
async def test_reserve_job_keeps_absurd_fields_out_of_the_store(services, change, field):
    _channel, status_channel, store, _bus = services
    stub = status_pb2_grpc.StatusServiceStub(status_channel)
    request_ = status_pb2.ReserveJobRequest(**{**GOOD_RESERVATION, **change})
    error = await refused(lambda: stub.ReserveJob(request_, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().split(": ", 1)[0] == field, error.details()
    assert (await store.list(limit=10))[0] == []
    reply = await stub.ReserveJob(status_pb2.ReserveJobRequest(**GOOD_RESERVATION), timeout=10)
    assert reply.created  # the same service takes a sound reservation right after


@pytest.mark.parametrize("body", [b"\xff\xff\xff\xff", b"\x0a\x02\xff\xfe", b"\x0a\x05ab"],
                         ids=["corrupt", "bad-utf8", "truncated"])
@pytest.mark.parametrize("method", ["/mintpipe.v1.GatewayService/SubmitJob", "/mintpipe.v1.StatusService/GetJob",
                                    "/mintpipe.v1.StatusService/WatchJob"])
async def test_undecodable_requests_are_invalid_argument(services, method, body):
    channel, status_channel, _store, _bus = services
    target = channel if "Gateway" in method else status_channel
    if method.endswith("WatchJob"):
        call = target.unary_stream(method, request_serializer=bytes, response_deserializer=bytes)
    else:
        call = target.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
    error = await refused(lambda: call(body, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith("request: not a valid message"), error.details()


async def test_sound_calls_still_work_through_the_same_checks(services, broker):
    channel, status_channel, store, bus = services
    reply = await gateway_pb2_grpc.GatewayServiceStub(channel).SubmitJob(
        gateway_pb2.SubmitJobRequest(settings_json=json.dumps({"seed": 4}), wallet=WALLET.lower()), timeout=10)
    stub = status_pb2_grpc.StatusServiceStub(status_channel)
    page = await stub.ListJobs(status_pb2.ListJobsRequest(wallet=WALLET.lower()), timeout=10)
    assert [job.job_id for job in page.jobs] == [reply.job_id]  # a lowercase filter finds the checksummed wallet
    watch = stub.WatchJob(status_pb2.WatchJobRequest(job_id=reply.job_id), timeout=10)
    assert (await watch.read()).stage == jobs_pb2.STAGE_QUEUED
    record = await store.apply(broker_pb2.JobEvent(job_id=reply.job_id, stage=jobs_pb2.STAGE_FAILED, error="x"))
    bus.publish(record)
    assert (await watch.read()).stage == jobs_pb2.STAGE_FAILED
    assert await watch.read() is grpc.aio.EOF  # a terminal stage ends the stream
