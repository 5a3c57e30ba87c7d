"""StatusService over gRPC: Get, List, Watch, and the gateway's Reserve/MarkPublished."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import grpc

from mintpipe.core.scenes import MAX_SETTINGS_JSON, SettingsError, validate_settings
from mintpipe.core.stages import STAGE_NAMES, TERMINAL_STAGES, UNTIL_MINTED, is_job_id
from mintpipe.core.wallets import normalize_wallet
from mintpipe.rpc.batch import Refused
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import jobs_pb2, status_pb2, status_pb2_grpc
from status.jobs.bus import JobBus
from status.jobs.store import BadCursor, IdempotencyConflict, JobStore
from status.jobs.view import JobView

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
MAX_RESERVATIONS = 1000  # one ReserveJobs call; the gateway sends at most gateway.service.MAX_BATCH
MAX_MARKS = 1000  # job ids in one MarkPublished call; the gateway sends at most gateway.service.MAX_BATCH

log = get_logger("status.grpc_api")


class StatusService(status_pb2_grpc.StatusServiceServicer):
    def __init__(self, store: JobStore, bus: JobBus, view: JobView | None = None) -> None:
        self.store = store
        self.bus = bus
        self.view = view or JobView(None)

    async def _job_id(self, job_id: str, context: grpc.aio.ServicerContext) -> str:
        if not is_job_id(job_id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "job_id: must be 32 lowercase hex digits")
        return job_id

    async def GetJob(self, request: status_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        record = await self.store.get(await self._job_id(request.job_id, context))
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: no job {request.job_id}")
        return await self.view.proto(record)

    async def ListJobs(self, request: status_pb2.ListJobsRequest,
                       context: grpc.aio.ServicerContext) -> status_pb2.ListJobsResponse:
        if request.stage and request.stage not in STAGE_NAMES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "stage: not a known stage")
        if request.limit > 100:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "limit: must be 1-100")
        wallet = ""
        if request.wallet:
            try:
                wallet = normalize_wallet(request.wallet)  # stored checksummed: a lowercase filter must match
            except ValueError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"wallet: {exc}")
        try:
            records, cursor = await self.store.list(wallet=wallet, stage=request.stage,
                                                    limit=request.limit or 20, cursor=request.cursor)
        except BadCursor as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cursor: {exc}")
        await self.view.prefetch(records)
        return status_pb2.ListJobsResponse(jobs=[await self.view.proto(r) for r in records], next_cursor=cursor)

    async def WatchJob(self, request: status_pb2.WatchJobRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[jobs_pb2.Job]:
        job_id = await self._job_id(request.job_id, context)
        seen = False
        terminal = UNTIL_MINTED if request.until_minted else TERMINAL_STAGES
        async for record in self.bus.watch(job_id, self.store.get, terminal):
            seen = True
            yield await self.view.proto(record)
        if not seen:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: no job {job_id}")

    async def ReserveJob(self, request: status_pb2.ReserveJobRequest,
                         context: grpc.aio.ServicerContext) -> status_pb2.ReserveJobResponse:
        try:
            return await self._reserve(request)
        except Refused as refused:
            await context.abort(refused.code, refused.details)

    async def ReserveJobs(self, request: status_pb2.ReserveJobsRequest,
                          context: grpc.aio.ServicerContext) -> status_pb2.ReserveJobsResponse:
        """Each reservation as ReserveJob would answer it. Run at once, so on SQLite the store's group commit takes
        them in one transaction and one fsync (mintpipe.db.group_commit); on PostgreSQL each is still a transaction of
        its own over the pool. Either way one round trip for the batch. A store failure fails its reservation
        alone (UNAVAILABLE: retried with the same key, it finds the job if it was committed after all)."""
        if len(request.reservations) > MAX_RESERVATIONS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"reservations: at most {MAX_RESERVATIONS} in one call")
        results = await asyncio.gather(*(self._reserve(r) for r in request.reservations), return_exceptions=True)
        outcomes = []
        for result in results:
            if isinstance(result, Refused):
                outcomes.append(status_pb2.ReserveOutcome(code=result.code.value[0], details=result.details))
            elif isinstance(result, Exception):
                log.error("reservation failed", error=repr(result))
                outcomes.append(status_pb2.ReserveOutcome(code=grpc.StatusCode.UNAVAILABLE.value[0],
                                                          details="status: job store unavailable; retry with the "
                                                                  "same key"))
            elif isinstance(result, BaseException):  # a cancel: the call itself is going away
                raise result
            else:
                outcomes.append(status_pb2.ReserveOutcome(reserved=result))
        return status_pb2.ReserveJobsResponse(outcomes=outcomes)

    async def _reserve(self, request: status_pb2.ReserveJobRequest) -> status_pb2.ReserveJobResponse:
        for name in ("idempotency_key", "wallet", "scene", "settings_json"):
            if not getattr(request, name):
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: required")
        if not SHA256_HEX.fullmatch(request.request_hash):
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "request_hash: must be a sha256 hex digest")
        if problem := _reservation_problem(request):
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            record, created = await self.store.reserve(request.idempotency_key, request.request_hash,
                                                       request.wallet, request.scene, request.settings_json)
        except IdempotencyConflict as exc:
            raise Refused(grpc.StatusCode.ALREADY_EXISTS, f"idempotency_key: {exc}") from None
        return status_pb2.ReserveJobResponse(job=record.to_proto(), created=created, published=record.published)

    async def MarkPublished(self, request: status_pb2.MarkPublishedRequest,
                            context: grpc.aio.ServicerContext) -> status_pb2.MarkPublishedResponse:
        job_ids = [*([request.job_id] if request.job_id or not request.job_ids else []), *request.job_ids]
        if len(job_ids) > MAX_MARKS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"job_ids: at most {MAX_MARKS} in one call")
        for job_id in job_ids:
            await self._job_id(job_id, context)
        # Concurrent writes: on SQLite the group commit takes them in one transaction (PostgreSQL: one each).
        marked = await asyncio.gather(*(self.store.mark_published(job_id) for job_id in job_ids))
        unknown = [job_id for job_id, ok in zip(job_ids, marked, strict=True) if not ok]
        if unknown and len(job_ids) == 1:  # a single mark answers as it did before job_ids
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: no job {unknown[0]}")
        return status_pb2.MarkPublishedResponse(batched=True, unknown_job_ids=unknown)

    async def DiscardJob(self, request: status_pb2.DiscardJobRequest,
                         context: grpc.aio.ServicerContext) -> status_pb2.DiscardJobResponse:
        if not await self.store.discard_unpublished(await self._job_id(request.job_id, context)):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"job_id: {request.job_id} is unknown or already published")
        return status_pb2.DiscardJobResponse()


def _reservation_problem(request: status_pb2.ReserveJobRequest) -> str | None:
    """What the gateway already checked, checked again: nothing absurd gets into the job store."""
    if not IDEMPOTENCY_KEY.fullmatch(request.idempotency_key):
        return "idempotency_key: 1-255 visible ASCII characters"
    try:
        if normalize_wallet(request.wallet) != request.wallet:
            return "wallet: must be EIP-55 checksummed"
    except ValueError as exc:
        return f"wallet: {exc}"
    if len(request.settings_json) > MAX_SETTINGS_JSON:
        return f"settings_json: larger than {MAX_SETTINGS_JSON} bytes"
    try:
        validate_settings(request.scene, json.loads(request.settings_json))
    except SettingsError as exc:
        return f"{'settings_json' if exc.field == 'settings' else exc.field}: {exc.message}"
    except (ValueError, RecursionError) as exc:
        return f"settings_json: not valid JSON ({str(exc)[:100]})"
    return None
