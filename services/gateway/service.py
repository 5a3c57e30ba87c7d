"""GatewayService.SubmitJob: validate → reserve the job (status, by idempotency key) → publish with a
confirm → mark published → answer the job id.

A submission is acknowledged only after the broker confirmed the render job. If the publish fails the
client gets UNAVAILABLE; retrying with the same key finds the reserved job and publishes it then."""

from __future__ import annotations

import math
import uuid

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.validation import InvalidRequest, validate_submission
from mintpipe.broker import Broker, BrokerUnavailable
from mintpipe.log import get_logger
from mintpipe.metrics import SUBMISSIONS
from mintpipe.pin_ledger import PINS_PER_JOB, PinLedger
from mintpipe.ratelimit import RateLimiter
from mintpipe.scenes import settings_hash
from mintpipe.v1 import broker_pb2, gateway_pb2, gateway_pb2_grpc, status_pb2, status_pb2_grpc

log = get_logger(__name__)

_STATUS_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class GatewayService(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, broker: Broker, status: status_pb2_grpc.StatusServiceStub,
                 ledger: PinLedger | None = None, monthly_pins: int | None = None,
                 wallet_limiter: RateLimiter | None = None) -> None:
        self.broker = broker
        self.status = status
        self.ledger = ledger
        self.monthly_pins = monthly_pins
        self.wallet_limiter = wallet_limiter

    async def _check_budget(self, job_id: str, job_settings_hash: str, context: grpc.aio.ServicerContext) -> None:
        """Refuse up front, before anything is rendered, when the month's pins cannot cover this job.

        The job was reserved a moment ago; a refused one is discarded with its key, so nothing remains."""
        if self.ledger is None or self.monthly_pins is None:
            return
        granted, used, held = await self.ledger.reserve_budget(job_id, job_settings_hash, self.monthly_pins)
        if not granted:
            try:
                await self.status.DiscardJob(status_pb2.DiscardJobRequest(job_id=job_id), timeout=10)
            except grpc.aio.AioRpcError as exc:
                log.warning("could not discard refused job", code=str(exc.code()))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"pin_budget: the monthly pin budget ({self.monthly_pins}) cannot cover this job's "
                                f"{PINS_PER_JOB} pins ({used} used, {held} held by jobs in progress); "
                                "try again next month")

    async def SubmitJob(self, request: gateway_pb2.SubmitJobRequest,
                        context: grpc.aio.ServicerContext) -> gateway_pb2.SubmitJobResponse:
        """Counts every call by outcome (mintpipe_jobs_submitted_total): `accepted`, or the gRPC status refused with."""
        try:
            reply = await self._submit(request, context)
        except BaseException:
            code = context.code() if hasattr(context, "code") else None
            SUBMISSIONS.labels(code.name.lower() if isinstance(code, grpc.StatusCode) else "error").inc()
            raise
        SUBMISSIONS.labels("accepted" if reply.created else "accepted_again").inc()
        return reply

    async def _submit(self, request: gateway_pb2.SubmitJobRequest,
                      context: grpc.aio.ServicerContext) -> gateway_pb2.SubmitJobResponse:
        try:
            job = validate_submission(request)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if self.wallet_limiter is not None and (wait := await self.wallet_limiter.take(job.wallet)) > 0:
            context.set_trailing_metadata((("retry-after", str(math.ceil(wait))),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"wallet: too many submissions from this wallet; retry in {math.ceil(wait)} s")
        if not self.broker.connected:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "broker: not connected; retry with the same key")

        key = request.idempotency_key or f"auto:{uuid.uuid4().hex}"
        try:
            reserved = await self.status.ReserveJob(status_pb2.ReserveJobRequest(
                idempotency_key=key, request_hash=job.request_hash, wallet=job.wallet, scene=job.scene,
                settings_json=job.settings_json), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                await context.abort(grpc.StatusCode.ALREADY_EXISTS, exc.details() or "idempotency_key: in use")
            code = exc.code() if exc.code() in _STATUS_DOWN else grpc.StatusCode.UNAVAILABLE
            log.warning("status unavailable", code=str(exc.code()))
            await context.abort(code, "status: job store unavailable; retry with the same key")

        job_id = reserved.job.job_id
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            if not reserved.published:
                await self._check_budget(job_id, settings_hash(job.scene, job.settings), context)
                submitted = Timestamp()
                submitted.GetCurrentTime()
                render = broker_pb2.RenderJob(job_id=job_id, scene=job.scene, settings_json=job.settings_json,
                                              wallet=job.wallet, submitted_at=submitted)
                try:
                    await self.broker.publish(self.broker.topology.jobs_exchange, "render", render,
                                              message_id=job_id)
                except BrokerUnavailable as exc:
                    log.warning("render job not confirmed", error=str(exc))
                    await context.abort(grpc.StatusCode.UNAVAILABLE,
                                        "broker: job not confirmed; retry with the same key")
                try:
                    await self.status.MarkPublished(status_pb2.MarkPublishedRequest(job_id=job_id), timeout=10)
                except grpc.aio.AioRpcError as exc:
                    # Already queued for real; at worst a retry publishes once more and the renderer's
                    # idempotency absorbs it.
                    log.warning("could not mark published", code=str(exc.code()))
            log.info("job accepted", created=reserved.created, scene=job.scene)
        return gateway_pb2.SubmitJobResponse(job_id=job_id, stage=reserved.job.stage, created=reserved.created)
