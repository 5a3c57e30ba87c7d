"""Submissions in batches (GatewayService.SubmitJobs, StatusService.ReserveJobs, the bridge's coalescing): each is
answered as if it had come alone, over real gRPC with the real status service, store and broker."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from mintpipe.ratelimit import KeyedRateLimiter
from mintpipe.v1 import broker_pb2, gateway_pb2, status_pb2
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
