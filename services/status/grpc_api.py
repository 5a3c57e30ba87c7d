"""StatusService over gRPC: Get, List, Watch, and the gateway's Reserve/MarkPublished."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import grpc

from mintpipe.events import STAGE_NAMES
from mintpipe.v1 import jobs_pb2, status_pb2, status_pb2_grpc
from status.bus import JobBus
from status.store import BadCursor, IdempotencyConflict, JobStore

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class StatusService(status_pb2_grpc.StatusServiceServicer):
    def __init__(self, store: JobStore, bus: JobBus) -> None:
        self.store = store
        self.bus = bus

    async def _job_id(self, job_id: str, context: grpc.aio.ServicerContext) -> str:
        if not JOB_ID.match(job_id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "job_id: must be 32 lowercase hex digits")
        return job_id

    async def GetJob(self, request: status_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        record = await self.store.get(await self._job_id(request.job_id, context))
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: no job {request.job_id}")
        return record.to_proto()

    async def ListJobs(self, request: status_pb2.ListJobsRequest,
                       context: grpc.aio.ServicerContext) -> status_pb2.ListJobsResponse:
        if request.stage and request.stage not in STAGE_NAMES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "stage: not a known stage")
        if request.limit > 100:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "limit: must be 1-100")
        try:
            records, cursor = await self.store.list(wallet=request.wallet, stage=request.stage,
                                                    limit=request.limit or 20, cursor=request.cursor)
        except BadCursor as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cursor: {exc}")
        return status_pb2.ListJobsResponse(jobs=[r.to_proto() for r in records], next_cursor=cursor)

    async def WatchJob(self, request: status_pb2.WatchJobRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[jobs_pb2.Job]:
        job_id = await self._job_id(request.job_id, context)
        seen = False
        async for record in self.bus.watch(job_id, self.store.get):
            seen = True
            yield record.to_proto()
        if not seen:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: no job {job_id}")

    async def ReserveJob(self, request: status_pb2.ReserveJobRequest,
                         context: grpc.aio.ServicerContext) -> status_pb2.ReserveJobResponse:
        for name in ("idempotency_key", "wallet", "scene", "settings_json"):
            if not getattr(request, name):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: required")
        if not SHA256_HEX.match(request.request_hash):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request_hash: must be a sha256 hex digest")
        try:
            record, created = await self.store.reserve(request.idempotency_key, request.request_hash,
                                                       request.wallet, request.scene, request.settings_json)
        except IdempotencyConflict as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"idempotency_key: {exc}")
        return status_pb2.ReserveJobResponse(job=record.to_proto(), created=created, published=record.published)

    async def MarkPublished(self, request: status_pb2.MarkPublishedRequest,
                            context: grpc.aio.ServicerContext) -> status_pb2.MarkPublishedResponse:
        if not await self.store.mark_published(await self._job_id(request.job_id, context)):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: no job {request.job_id}")
        return status_pb2.MarkPublishedResponse()

    async def DiscardJob(self, request: status_pb2.DiscardJobRequest,
                         context: grpc.aio.ServicerContext) -> status_pb2.DiscardJobResponse:
        if not await self.store.discard_unpublished(await self._job_id(request.job_id, context)):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"job_id: {request.job_id} is unknown or already published")
        return status_pb2.DiscardJobResponse()
