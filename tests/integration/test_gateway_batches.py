"""Submissions in batches (GatewayService.SubmitJobs, StatusService.ReserveJobs, the bridge's coalescing): each is
answered as if it had come alone, over real gRPC with the real status service, store and broker."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from gateway.validation import validate_submission
from mintpipe.limits.memory import KeyedRateLimiter
from mintpipe.rpc.server import GrpcServer
from mintpipe.v1 import broker_pb2, gateway_pb2, status_pb2, status_pb2_grpc
from status.grpc_api import StatusService
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from tests.conftest import free_port
from tests.support.gateway import running_gateway

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


def submission(seed: int, key: str, wallet: str = WALLET) -> gateway_pb2.SubmitJobRequest:
    return gateway_pb2.SubmitJobRequest(settings_json=json.dumps({"seed": seed}), wallet=wallet, idempotency_key=key)


async def test_one_batch_answers_each_submission_as_alone(broker, probe, tmp_path):
    async with running_gateway(broker, tmp_path) as side:
        first = await side.gateway.SubmitJob(submission(1, "taken"), timeout=10)
        reply = await side.gateway.SubmitJobs(gateway_pb2.SubmitJobsRequest(submissions=[
            *(submission(10 + i, f"new-{i}") for i in range(5)),
            submission(1, "taken"),  # the same key and body: the same job
            submission(2, "taken"),  # the same key, another body
            gateway_pb2.SubmitJobRequest(settings_json='{"frames": 3}', wallet=WALLET),
            submission(3, "bad-wallet", wallet="0x123"),
        ]), timeout=20)
        outcomes = list(reply.outcomes)
        assert len(outcomes) == 9
        made = [o.reply for o in outcomes[:5]]
        assert all(o.code == 0 for o in outcomes[:5]) and all(r.created for r in made)
        assert len({r.job_id for r in made}) == 5
        assert outcomes[5].code == 0 and outcomes[5].reply.job_id == first.job_id and not outcomes[5].reply.created
        assert outcomes[6].code == grpc.StatusCode.ALREADY_EXISTS.value[0]
        assert outcomes[6].details.startswith("idempotency_key: ")
        assert outcomes[7].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert outcomes[7].details.startswith("settings.frames: ")
        assert outcomes[8].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert outcomes[8].details.startswith("wallet: ")

        queued = [broker_pb2.RenderJob.FromString(m.body).job_id
                  for m in await probe.drain(broker.topology.render_queue)]
        assert sorted(queued) == sorted([first.job_id, *(r.job_id for r in made)]), "each new job queued once"
        for r in made:  # in the store before the answer
            job = await side.status.GetJob(status_pb2.GetJobRequest(job_id=r.job_id), timeout=10)
            assert job.job_id == r.job_id
        await side.service.close()
        assert await side.store.unpublished_before(2**40) == [], "every queued job marked published"


async def test_a_wallet_over_its_limit_gets_retry_after_in_its_outcome(broker, tmp_path):
    limiter = KeyedRateLimiter(rate=1, per=3600, burst=1)
    async with running_gateway(broker, tmp_path, wallet_limiter=limiter) as side:
        reply = await side.gateway.SubmitJobs(gateway_pb2.SubmitJobsRequest(
            submissions=[submission(i, f"w-{i}") for i in range(3)]), timeout=20)
        codes = sorted(o.code for o in reply.outcomes)
        assert codes == [0, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]]
        refused = [o for o in reply.outcomes if o.code]
        assert all(o.retry_after > 0 and o.details.startswith("wallet: ") for o in refused)


async def test_concurrent_reservations_share_calls_and_each_gets_its_job(broker, tmp_path):
    async with running_gateway(broker, tmp_path) as side:
        replies = await asyncio.gather(*(side.gateway.SubmitJob(submission(i, f"c-{i}"), timeout=20)
                                         for i in range(40)))
        assert len({r.job_id for r in replies}) == 40 and all(r.created for r in replies)
        again = await side.gateway.SubmitJob(submission(7, "c-7"), timeout=10)
        assert again.job_id == replies[7].job_id and not again.created


class _FailingKey:
    """The real job store, whose reservation of one idempotency key fails (a dropped database connection)."""

    def __init__(self, store: JobStore, key: str) -> None:
        self._store, self._key = store, key

    async def reserve(self, key: str, *args, **kwargs):
        if key == self._key:
            raise ConnectionError("the database went away")
        return await self._store.reserve(key, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


async def test_a_store_failure_fails_its_reservation_alone(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    server = GrpcServer("127.0.0.1", free_port(), ["mintpipe.v1.StatusService"])
    status_pb2_grpc.add_StatusServiceServicer_to_server(StatusService(_FailingKey(store, "boom"), JobBus()),
                                                        server.server)
    await server.start({})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            status = status_pb2_grpc.StatusServiceStub(channel)
            reservations = [validated(submission(i, key)) for i, key in enumerate(["a", "boom", "b"])]
            reply = await status.ReserveJobs(status_pb2.ReserveJobsRequest(reservations=reservations), timeout=10)
            first, failed, last = reply.outcomes
            assert first.code == 0 and last.code == 0 and first.reserved.created and last.reserved.created
            assert failed.code == grpc.StatusCode.UNAVAILABLE.value[0]
            assert failed.details.startswith("status: ")
            assert await store.get(first.reserved.job.job_id) is not None
    finally:
        await server.stop(0)
        await store.close()


async def test_marks_go_on_past_an_unknown_job_and_are_capped(broker, tmp_path):
    async with running_gateway(broker, tmp_path) as side:
        fresh = await side.status.ReserveJob(validated(submission(2, "m-2")), timeout=10)  # not published
        unknown = "f" * 32
        reply = await side.status.MarkPublished(status_pb2.MarkPublishedRequest(
            job_id=unknown, job_ids=[fresh.job.job_id]), timeout=10)
        assert reply.batched and list(reply.unknown_job_ids) == [unknown]
        assert await side.store.unpublished_before(2**40) == [], "the known job was marked all the same"
        with pytest.raises(grpc.aio.AioRpcError) as one_unknown:
            await side.status.MarkPublished(status_pb2.MarkPublishedRequest(job_id=unknown), timeout=10)
        assert one_unknown.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as too_many:
            await side.status.MarkPublished(status_pb2.MarkPublishedRequest(job_ids=[unknown] * 1001), timeout=10)
        assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert too_many.value.details().startswith("job_ids: ")


def validated(request: gateway_pb2.SubmitJobRequest) -> status_pb2.ReserveJobRequest:
    job = validate_submission(request)
    return status_pb2.ReserveJobRequest(idempotency_key=request.idempotency_key, request_hash=job.request_hash,
                                        wallet=job.wallet, scene=job.scene, settings_json=job.settings_json)
