"""The front end's job routes (SPEC.md): submit, read, list and watch jobs, the scenes, and `/ipfs/{cid}`. Reads
come from the job store in this process; submissions go to the gateway over gRPC (status.bridge.submit). The app
that mounts them, with the operators' routes beside them, is status.app."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from mintpipe.core.cid import is_cid
from mintpipe.core.scenes import describe_scenes
from mintpipe.core.stages import STAGES_BY_NAME, TERMINAL_STAGES, UNTIL_MINTED
from mintpipe.core.wallets import normalize_wallet
from mintpipe.objects.ipfs import LocalIpfsStore
from status import metrics
from status.bridge.chain import MintOut
from status.bridge.ipfs import object_response
from status.bridge.submit import SubmitJobBody, Submitter
from status.errors import ApiError, ErrorOut
from status.jobs.bus import JobBus
from status.jobs.records import JobRecord
from status.jobs.store import BadCursor, JobStore
from status.jobs.view import JobView

JOB_ID = re.compile(r"[0-9a-f]{32}")


class SubmitJobAccepted(BaseModel):
    job_id: str
    stage: str
    status_url: str
    claim_token: str | None = Field(None, description="proof that you submitted this job: keep it to ask for a "
                                    "relayed mint (POST /v1/jobs/{job_id}/mint); answered only here, never by a GET")


class JobAssetsOut(BaseModel):
    image: str | None
    animation: str | None
    preview: str | None
    metadata: str | None


class JobOut(BaseModel):
    job_id: str
    stage: str
    progress: int
    error: str | None
    wallet: str
    scene: str
    settings: dict[str, Any]
    assets: JobAssetsOut
    token_uri: str | None
    created_at: str
    updated_at: str
    mint: MintOut | None = Field(None, description="what a wallet needs to mint (pinned jobs, with a chain)")
    token_id: int | None = None
    tx_hash: str | None = None
    block: int | None = None
    minted_at: str | None = None


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 404, 409, 413, 429, 503)}


def known_job_of(store: JobStore) -> Callable[[str], Awaitable[JobRecord]]:
    """The job of an id in a path, or the 404 every route gives (the chain's routes too)."""

    async def known_job(job_id: str) -> JobRecord:
        # SPEC: an unknown id is a 404, and an id of the wrong shape is unknown too (it was never issued).
        record = await store.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if record is None:
            raise ApiError(404, "not_found", "no job with this id (job ids are 32 lowercase hex digits)", "job_id")
        return record

    return known_job


def create_jobs_router(store: JobStore, bus: JobBus, view: JobView, submitter: Submitter,
                       ipfs_store: LocalIpfsStore, ipfs_gateway: str | None,
                       client_ip_of: Callable[[Request], str]) -> APIRouter:
    """`ipfs_store` is the local IPFS store, or mintpipe.objects.ipfs_s3.S3IpfsStore with MINTPIPE_ARTIFACTS_URL=s3://...;
    `ipfs_gateway` is where /ipfs/{cid} sends what is not stored here (STATUS_IPFS_GATEWAY_URL)."""
    router = APIRouter()
    known_job = known_job_of(store)

    @router.post("/v1/jobs", status_code=202, response_model=SubmitJobAccepted, responses=ERRORS,
                 response_model_exclude_none=True)  # no claim_token without a key: the lean route's bytes
    async def submit_job(
        body: SubmitJobBody,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> dict[str, Any]:
        doc, url = await submitter.submit(body, idempotency_key, lambda: client_ip_of(request))
        response.headers["Location"] = url
        return doc

    @router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
    async def get_job(job_id: str) -> dict[str, Any]:
        return await view.doc(await known_job(job_id))

    @router.get("/v1/jobs/{job_id}/events", responses={200: {"content": {"text/event-stream": {}}}, **ERRORS})
    async def job_events(
        job_id: str,
        until: Annotated[str, Query(pattern="^(pinned|minted)$",
                                    description="end the stream at pinned (default) or go on until minted")] = "pinned",
    ) -> EventSourceResponse:
        await known_job(job_id)
        terminal = TERMINAL_STAGES if until == "pinned" else UNTIL_MINTED

        async def stream() -> Any:
            metrics.SSE_CLIENTS.inc()
            try:
                async for record in bus.watch(job_id, store.get, terminal):
                    yield {"event": "job", "id": f"{record.updated_at:.6f}", "data": json.dumps(await view.doc(record))}
            finally:
                metrics.SSE_CLIENTS.dec()

        return EventSourceResponse(stream(), ping=15)

    @router.get("/v1/jobs", response_model=JobPage, responses=ERRORS)
    async def list_jobs(
        wallet: str | None = None,
        stage: Annotated[str | None, Query(description="one of " + ", ".join(STAGES_BY_NAME))] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        wallet_filter = ""
        if wallet:
            try:
                wallet_filter = normalize_wallet(wallet)
            except ValueError as exc:
                raise ApiError(400, "invalid_argument", f"wallet: {exc}", "wallet") from None
        if stage is not None and stage not in STAGES_BY_NAME:
            raise ApiError(400, "invalid_argument", f"stage: one of {', '.join(STAGES_BY_NAME)}", "stage")
        try:
            records, next_cursor = await store.list(
                wallet=wallet_filter, stage=STAGES_BY_NAME.get(stage or "", 0), limit=limit, cursor=cursor or "")
        except BadCursor as exc:
            raise ApiError(400, "invalid_argument", f"cursor: {exc}", "cursor") from None
        await view.prefetch(records)  # one SignVouchers call for the page's pinned jobs
        return {"jobs": [await view.doc(r) for r in records], "next_cursor": next_cursor or None}

    @router.get("/v1/scenes")
    async def scenes() -> dict[str, Any]:
        return {"scenes": describe_scenes()}

    # The stored object in its own content type (image/gif, video/mp4, application/json, ...).
    @router.get("/ipfs/{cid}", responses={200: {"content": {"*/*": {}}},
                                           307: {"description": "not stored here: the configured IPFS gateway"},
                                           **ERRORS})
    async def ipfs(cid: Annotated[str, Path(max_length=200)], request: Request) -> Response:
        if not is_cid(cid):
            raise ApiError(400, "invalid_argument", "cid: not a valid CID", "cid")
        stored = await asyncio.to_thread(ipfs_store.get, cid)  # a stat, or a HEAD request on the object store
        if stored is None and ipfs_gateway:
            # Pinned elsewhere (Pinata keeps no local copy): the same CID from the operator's gateway.
            return RedirectResponse(f"{ipfs_gateway.rstrip('/')}/ipfs/{cid}", status_code=307)
        if stored is None:
            raise ApiError(404, "not_found", f"{cid} is not pinned here", "cid")
        # Content-addressed: the bytes behind a CID never change.
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{cid}"'}
        if stored.path is None:  # in the object store: streamed through, byte ranges too (status.bridge.ipfs)
            return object_response(ipfs_store, stored, headers, request.headers.get("range"))
        return FileResponse(stored.path, media_type=stored.content_type, headers=headers)

    return router
