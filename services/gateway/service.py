"""GatewayService.SubmitJob: validate → reserve the job (status, by idempotency key) → publish with a
confirm → answer the job id; the job is marked published in the store behind the answer.

A submission is acknowledged only after the job store committed the job and the broker confirmed the render
job. If the publish fails the client gets UNAVAILABLE; retrying with the same key finds the reserved job and
publishes it then.

Reservations travel in batches (StatusService.ReserveJobs through mintpipe.rpc.coalesce): the submissions that
arrive while the previous calls are in flight go together in the next, one round trip for all (and on SQLite one
store commit, its group commit; on PostgreSQL each reservation is still a transaction of its own over the pool),
and each still waits for its own job's commit. The "published" marks go the same way but nobody waits for them:
the flag only spares a retry or the orphan sweeper a second publish, which the renderer's idempotency absorbs
anyway (a gateway killed before sending its marks leaves jobs the sweeper republishes after
STATUS_ORPHAN_AFTER_SECONDS). Measured with py-spy at ~200 submissions a second: the two extra gRPC calls per
submit were the largest part of the gateway's CPU and a third of the status process's gRPC work.

Against a status service of the version before (a rolling upgrade) both fall back to one call per job
(mintpipe.rpc.batch): it has no ReserveJobs, and its MarkPublished reads job_id alone."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.validation import InvalidRequest, validate_submission
from mintpipe.core.scenes import settings_hash
from mintpipe.limits.memory import RateLimiter
from mintpipe.messaging.broker import Broker, BrokerUnavailable
from mintpipe.pin_ledger import PINS_PER_JOB, PinLedger
from mintpipe.rpc.batch import BatchedCall, OlderPeer, Refused, status_code
from mintpipe.rpc.coalesce import Coalescer, Unavailable
from mintpipe.runtime.log import get_logger
from mintpipe.runtime.metrics import SUBMISSIONS
from mintpipe.v1 import broker_pb2, gateway_pb2, gateway_pb2_grpc, status_pb2, status_pb2_grpc

log = get_logger(__name__)
_level = logging.getLogger(__name__)  # structlog's stdlib logger underneath: its level, checked before a call

_STATUS_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
MAX_BATCH = 256  # reservations (or marks) in one call to the status service
MAX_BATCH_BYTES = 1 << 20  # and their bytes: far below gRPC's 4 MiB message limit
RECENT_SECONDS = 30.0  # far longer than a mark takes to be committed (a few ms)


class GatewayService(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, broker: Broker, status: status_pb2_grpc.StatusServiceStub,
                 ledger: PinLedger | None = None, monthly_pins: int | None = None,
                 wallet_limiter: RateLimiter | None = None) -> None:
        self.broker = broker
        self.status = status
        self.ledger = ledger
        self.monthly_pins = monthly_pins
        self.wallet_limiter = wallet_limiter
        self._reserve = BatchedCall("reserve", self._reserve_batched, self._reserve_one)
        self._reservations: Coalescer[status_pb2.ReserveJobRequest, status_pb2.ReserveJobResponse] = Coalescer(
            self._reserve, MAX_BATCH, name="reserve", size=status_pb2.ReserveJobRequest.ByteSize,
            max_bytes=MAX_BATCH_BYTES)
        # Marks are nobody's wait, so they linger for company: at ~200 submissions a second, 50 ms makes ~10 marks
        # a call instead of ~2 (a gRPC call is ~0.7 ms of CPU across both ends when calls come one at a time).
        self._mark = BatchedCall("mark published", self._mark_batched, self._mark_one,
                                 (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED))
        self._marks: Coalescer[str, None] = Coalescer(self._mark, MAX_BATCH, linger=0.05, name="mark published")
        # Jobs this gateway had confirmed in the last RECENT_SECONDS, oldest first: a retry that comes before the
        # store has the mark is not published twice (through another gateway replica it may be, as when a mark
        # is lost; the renderer's idempotency absorbs that).
        self._confirmed: dict[str, float] = {}

    def _remember_confirmed(self, job_id: str) -> None:
        now = time.monotonic()
        confirmed = self._confirmed
        while confirmed:  # forget the expired ones (insertion order is time order)
            oldest = next(iter(confirmed))
            if now - confirmed[oldest] < RECENT_SECONDS:
                break
            del confirmed[oldest]
        confirmed[job_id] = now

    async def _reserve_batched(self, requests: list[status_pb2.ReserveJobRequest]) -> list[object]:
        reply = await self.status.ReserveJobs(status_pb2.ReserveJobsRequest(reservations=requests), timeout=10)
        return [outcome.reserved if outcome.code == 0 else Refused(status_code(outcome.code), outcome.details)
                for outcome in reply.outcomes]

    async def _reserve_one(self, request: status_pb2.ReserveJobRequest) -> object:
        try:
            return await self.status.ReserveJob(request, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return Refused(exc.code(), exc.details() or "")

    async def _mark_batched(self, job_ids: list[str]) -> list[None]:
        # job_id carries the first: a status service of the version before reads it alone (and would refuse an
        # empty one), so it marks that one and answers without `batched`; the others then go one call each.
        reply = await self.status.MarkPublished(
            status_pb2.MarkPublishedRequest(job_id=job_ids[0], job_ids=job_ids[1:]), timeout=10)
        if len(job_ids) > 1 and not reply.batched:
            raise OlderPeer([None])
        if reply.unknown_job_ids:
            log.warning("marked published: no such job", job_ids=list(reply.unknown_job_ids))
        return [None] * len(job_ids)

    async def _mark_one(self, job_id: str) -> object:
        try:
            await self.status.MarkPublished(status_pb2.MarkPublishedRequest(job_id=job_id), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return Refused(exc.code(), exc.details() or "")  # logged by the coalescer; the others go on
        return None

    async def close(self) -> None:
        """Sends the marks still waiting (on a drain, after the last SubmitJob)."""
        await self._marks.flush()

    async def _check_budget(self, job_id: str, job_settings_hash: str) -> None:
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
            raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"pin_budget: the monthly pin budget ({self.monthly_pins}) cannot cover this job's "
                          f"{PINS_PER_JOB} pins ({used} used, {held} held by jobs in progress); "
                          "try again next month")

    async def SubmitJob(self, request: gateway_pb2.SubmitJobRequest,
                        context: grpc.aio.ServicerContext) -> gateway_pb2.SubmitJobResponse:
        try:
            return await self._counted(request)
        except Refused as refused:
            if refused.retry_after:
                context.set_trailing_metadata((("retry-after", str(refused.retry_after)),))
            await context.abort(refused.code, refused.details)
            raise  # not reached: abort raises

    async def SubmitJobs(self, request: gateway_pb2.SubmitJobsRequest,
                         context: grpc.aio.ServicerContext) -> gateway_pb2.SubmitJobsResponse:
        """Each submission as SubmitJob would answer it, all at once: their reservations share a batch too."""
        if len(request.submissions) > MAX_BATCH:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"submissions: at most {MAX_BATCH} in one call")
        results = await asyncio.gather(*(self._counted(s) for s in request.submissions), return_exceptions=True)
        outcomes = []
        for result in results:
            if isinstance(result, Refused):
                outcomes.append(gateway_pb2.SubmitOutcome(code=result.code.value[0], details=result.details,
                                                          retry_after=result.retry_after))
            elif isinstance(result, BaseException):
                # What SubmitJob would answer as UNKNOWN; the bridge says 500 without details.
                log.error("submission failed", error=repr(result))
                outcomes.append(gateway_pb2.SubmitOutcome(code=grpc.StatusCode.UNKNOWN.value[0]))
            else:
                outcomes.append(gateway_pb2.SubmitOutcome(reply=result))
        return gateway_pb2.SubmitJobsResponse(outcomes=outcomes)

    async def _counted(self, request: gateway_pb2.SubmitJobRequest) -> gateway_pb2.SubmitJobResponse:
        """Counts every submission by outcome (mintpipe_jobs_submitted_total): `accepted`, or the gRPC status it
        was refused with."""
        try:
            reply = await self._submit(request)
        except Refused as refused:
            SUBMISSIONS.labels(refused.code.name.lower()).inc()
            raise
        except BaseException:
            SUBMISSIONS.labels("error").inc()
            raise
        SUBMISSIONS.labels("accepted" if reply.created else "accepted_again").inc()
        return reply

    async def _submit(self, request: gateway_pb2.SubmitJobRequest) -> gateway_pb2.SubmitJobResponse:
        try:
            job = validate_submission(request)
        except InvalidRequest as exc:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        if self.wallet_limiter is not None and (wait := await self.wallet_limiter.take(job.wallet)) > 0:
            raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"wallet: too many submissions from this wallet; retry in {math.ceil(wait)} s",
                          math.ceil(wait))
        if not self.broker.connected:
            raise Refused(grpc.StatusCode.UNAVAILABLE, "broker: not connected; retry with the same key")

        key = request.idempotency_key or f"auto:{uuid.uuid4().hex}"
        try:
            reserved = await self._reservations.call(status_pb2.ReserveJobRequest(
                idempotency_key=key, request_hash=job.request_hash, wallet=job.wallet, scene=job.scene,
                settings_json=job.settings_json))
        except Unavailable as exc:  # the batch's call failed, or this reservation waited too long for one
            code = exc.cause.code() if isinstance(exc.cause, grpc.aio.AioRpcError) else grpc.StatusCode.UNAVAILABLE
            log.warning("status unavailable", code=str(code), error=str(exc))
            raise Refused(code if code in _STATUS_DOWN else grpc.StatusCode.UNAVAILABLE,
                          "status: job store unavailable; retry with the same key") from None
        except Refused as exc:
            code, details = exc.code, exc.details
            if code == grpc.StatusCode.ALREADY_EXISTS:
                raise Refused(grpc.StatusCode.ALREADY_EXISTS, details or "idempotency_key: in use") from None
            log.warning("status unavailable", code=str(code))
            raise Refused(code if code in _STATUS_DOWN else grpc.StatusCode.UNAVAILABLE,
                          "status: job store unavailable; retry with the same key") from None

        job_id = reserved.job.job_id
        with structlog.contextvars.bound_contextvars(job_id=job_id):
            if not reserved.published and job_id not in self._confirmed:
                await self._check_budget(job_id, settings_hash(job.scene, job.settings))
                now = time.time_ns()
                submitted = Timestamp(seconds=now // 1_000_000_000, nanos=now % 1_000_000_000)
                render = broker_pb2.RenderJob(job_id=job_id, scene=job.scene, settings_json=job.settings_json,
                                              wallet=job.wallet, submitted_at=submitted)
                try:
                    await self.broker.publish(self.broker.topology.jobs_exchange, "render", render,
                                              message_id=job_id)
                except BrokerUnavailable as exc:
                    log.warning("render job not confirmed", error=str(exc))
                    raise Refused(grpc.StatusCode.UNAVAILABLE,
                                  "broker: job not confirmed; retry with the same key") from None
                # Already queued for real; should the mark be lost, at worst a retry or the sweeper publishes
                # once more and the renderer's idempotency absorbs it.
                self._remember_confirmed(job_id)
                self._marks.post(job_id)
            if _level.isEnabledFor(logging.INFO):  # a dropped call still cost ~10 us per submit (py-spy)
                log.info("job accepted", created=reserved.created, scene=job.scene)
        return gateway_pb2.SubmitJobResponse(job_id=job_id, stage=reserved.job.stage, created=reserved.created)
