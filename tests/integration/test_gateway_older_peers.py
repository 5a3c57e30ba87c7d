"""A rolling upgrade: the batched methods meet a peer of the version before, over real gRPC. A status service
with no ReserveJobs whose MarkPublished reads job_id alone, and a gateway with no SubmitJobs: every submission is
still answered as before and every confirmed job still marked published."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.service import GatewayService
from mintpipe.rpc.server import GrpcServer
from mintpipe.v1 import broker_pb2, gateway_pb2, gateway_pb2_grpc, status_pb2, status_pb2_grpc
from status.bridge.submit import SubmitJobBody, Submitter
from status.errors import ApiError
from status.grpc_api import StatusService
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from tests.conftest import free_port

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


class OldStatus(status_pb2_grpc.StatusServiceServicer):
    """The status service before batching: ReserveJob, and a MarkPublished that reads job_id alone (an empty one
    is INVALID_ARGUMENT). ReserveJobs is left to the generated base class: UNIMPLEMENTED."""

    def __init__(self, store: JobStore) -> None:
        self.store, self.real = store, StatusService(store, JobBus())
        self.marks = 0

    async def ReserveJob(self, request, context):
        return await self.real.ReserveJob(request, context)

    async def MarkPublished(self, request, context):
        self.marks += 1
        if not request.job_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "job_id: must be 32 lowercase hex digits")
        if not await self.store.mark_published(request.job_id):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: no job {request.job_id}")
        return status_pb2.MarkPublishedResponse()


class OldGateway(gateway_pb2_grpc.GatewayServiceServicer):
    """The gateway before batching: SubmitJob only (SubmitJobs: UNIMPLEMENTED, from the generated base class)."""

    def __init__(self, real: GatewayService) -> None:
        self.real = real

    async def SubmitJob(self, request, context):
        return await self.real.SubmitJob(request, context)


@asynccontextmanager
async def serving(add, servicer, name: str) -> AsyncIterator[grpc.aio.Channel]:
    server = GrpcServer("127.0.0.1", free_port(), [name])
    add(servicer, server.server)
    await server.start({})
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(0)


@asynccontextmanager
async def gateway_in_front_of(broker, status: status_pb2_grpc.StatusServiceServicer
                              ) -> AsyncIterator[tuple[GatewayService, gateway_pb2_grpc.GatewayServiceStub]]:
    """A real gateway on loopback whose status service is `status` (served on loopback too)."""
    async with serving(status_pb2_grpc.add_StatusServiceServicer_to_server, status,
                       "mintpipe.v1.StatusService") as status_channel:
        service = GatewayService(broker, status_pb2_grpc.StatusServiceStub(status_channel))
        async with serving(gateway_pb2_grpc.add_GatewayServiceServicer_to_server, service,
                           "mintpipe.v1.GatewayService") as channel:
            yield service, gateway_pb2_grpc.GatewayServiceStub(channel)


def submission(seed: int, key: str) -> gateway_pb2.SubmitJobRequest:
    return gateway_pb2.SubmitJobRequest(settings_json=json.dumps({"seed": seed}), wallet=WALLET, idempotency_key=key)


async def test_a_gateway_against_an_older_status_service_reserves_and_marks_every_job(broker, probe, tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    old = OldStatus(store)
    try:
        async with gateway_in_front_of(broker, old) as (service, gateway):
            reply = await gateway.SubmitJobs(gateway_pb2.SubmitJobsRequest(
                submissions=[submission(i, f"old-{i}") for i in range(6)]), timeout=20)
            outcomes = list(reply.outcomes)
            assert all(o.code == 0 for o in outcomes) and all(o.reply.created for o in outcomes)
            with pytest.raises(grpc.aio.AioRpcError) as conflict:
                await gateway.SubmitJob(submission(99, "old-0"), timeout=10)
            assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
            again = await gateway.SubmitJob(submission(0, "old-0"), timeout=10)
            assert again.job_id == outcomes[0].reply.job_id and not again.created
            await service.close()  # the marks, as on a drain
        queued = [broker_pb2.RenderJob.FromString(m.body).job_id
                  for m in await probe.drain(broker.topology.render_queue)]
        assert sorted(queued) == sorted(o.reply.job_id for o in outcomes), "each job queued once"
        assert await store.unpublished_before(2**40) == [], "every job marked, though the peer reads job_id alone"
        assert old.marks >= 6
    finally:
        await store.close()


async def test_a_bridge_against_an_older_gateway_answers_each_submission(broker, tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    try:
        async with serving(status_pb2_grpc.add_StatusServiceServicer_to_server, StatusService(store, JobBus()),
                           "mintpipe.v1.StatusService") as status_channel:
            real = GatewayService(broker, status_pb2_grpc.StatusServiceStub(status_channel))
            async with serving(gateway_pb2_grpc.add_GatewayServiceServicer_to_server, OldGateway(real),
                               "mintpipe.v1.GatewayService") as channel:
                outcomes = Counter("submissions", "test", ["outcome"], registry=CollectorRegistry())
                submitter = Submitter(gateway_pb2_grpc.GatewayServiceStub(channel), outcomes, None, None)

                def body(seed: int) -> SubmitJobBody:
                    return SubmitJobBody(settings={"seed": seed}, wallet=WALLET)

                answers = await asyncio.gather(*(submitter.submit(body(i), f"b-{i}", lambda: "127.0.0.1")
                                                 for i in range(5)),
                                               submitter.submit(SubmitJobBody(settings={"frames": 3}, wallet=WALLET),
                                                                None, lambda: "127.0.0.1"),
                                               return_exceptions=True)
                made = answers[:5]
                assert all(isinstance(a, tuple) and a[0]["stage"] == "queued" for a in made)
                assert len({a[0]["job_id"] for a in made}) == 5
                invalid = answers[5]
                conflict = (await asyncio.gather(submitter.submit(body(50), "b-0", lambda: "127.0.0.1"),
                                                 return_exceptions=True))[0]
                assert isinstance(conflict, ApiError) and conflict.status == 409
                assert conflict.field == "idempotency_key"
                assert isinstance(invalid, ApiError) and invalid.status == 400 and invalid.field == "settings.frames"
                await real.close()
    finally:
        await store.close()


class UpgradedLater(OldStatus):
    """An older status service that counts the ReserveJobs calls it refuses (as UNIMPLEMENTED)."""

    def __init__(self, store: JobStore) -> None:
        super().__init__(store)
        self.batched_tries = 0

    async def ReserveJobs(self, request, context):
        self.batched_tries += 1
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


async def test_batching_is_tried_again_after_a_while(broker, tmp_path, monkeypatch):
    """One UNIMPLEMENTED does not turn batching off for good: the peer may be upgraded (here: at once)."""
    monkeypatch.setattr("mintpipe.rpc.batch.RETRY_BATCHED_AFTER", 0.0)
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    old = UpgradedLater(store)
    try:
        async with gateway_in_front_of(broker, old) as (service, gateway):
            for i in range(3):
                assert (await gateway.SubmitJob(submission(i, f"again-{i}"), timeout=10)).created
            assert old.batched_tries == 3, "each reservation tried the batched method first"
            await service.close()
    finally:
        await store.close()
