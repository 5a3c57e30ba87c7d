"""The HTTP bridge (the front end's contract in SPEC.md). Reads come from the job store in this process;
submissions are forwarded to the gateway over gRPC."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as PathLike
from typing import Annotated, Any

from fastapi import FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mintpipe import metrics as shared_metrics
from mintpipe.cid import is_cid
from mintpipe.disk import DiskGuard
from mintpipe.events import STAGES_BY_NAME, TERMINAL_STAGES, UNTIL_MINTED
from mintpipe.ipfs_store import LocalIpfsStore
from mintpipe.ratelimit import RateLimiter
from mintpipe.scenes import describe_scenes
from mintpipe.v1 import gateway_pb2_grpc, renderer_pb2_grpc
from mintpipe.wallets import normalize_wallet
from status import metrics as status_metrics
from status.admin import AdminDeps, create_admin_router
from status.admin_api import OpsConfig, mount_operators
from status.chain_api import MintOut, create_chain_router, register_chain_metrics
from status.errors import (
    ApiError,
    BodySizeLimit,
    ErrorOut,
    api_error_handler,
    http_exception_handler,
    validation_error_handler,
)
from status.ipfs_serve import object_response
from status.jobs.bus import JobBus
from status.jobs.claims import ClaimTokens
from status.jobs.records import JobRecord
from status.jobs.store import BadCursor, JobStore
from status.jobs.view import JobView
from status.minting import ChainDeps
from status.pages import create_page_router
from status.preview import create_preview_router
from status.submit_route import SubmitJobBody, Submitter, install_fast_path

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


class ReplicaOut(BaseModel):
    name: str = Field(description="the replica's name (STATUS_REPLICA_NAME, MINTPIPE_REPLICA, else host:pid)")
    leader: bool = Field(description="this replica runs the sweepers and the chain watcher (one at a time)")


class HealthOut(BaseModel):
    status: str = Field(description="ok, or degraded when a check fails (503)")
    checks: dict[str, bool]
    disk: dict[str, float] | None = Field(None, description="the data volume: total_bytes, free_bytes, "
                                          "free_percent, and the thresholds (degraded, new jobs refused)")
    replica: ReplicaOut | None = Field(None, description="which status replica answered, and whether it leads")


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 404, 409, 413, 429, 503)}


def drop_unused_validation_responses(app: FastAPI) -> None:
    """FastAPI documents a 422 for every route with parameters; this app answers bad input with a 400 in the
    error shape instead (validation_error_handler), so the 422s would only mislead clients."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.get("responses", {})
                    if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                        responses.pop("422")
            for unused in ("HTTPValidationError", "ValidationError"):
                document.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@dataclass
class BridgeDeps:
    store: JobStore
    bus: JobBus
    gateway: gateway_pb2_grpc.GatewayServiceStub
    ipfs: LocalIpfsStore  # or mintpipe.ipfs_s3.S3IpfsStore, with MINTPIPE_ARTIFACTS_URL=s3://...
    checks: dict[str, Callable[[], Any]]
    admin: AdminDeps | None = None
    ip_limiter: RateLimiter | None = None
    trust_forwarded_for: bool = False
    max_body_bytes: int = 64 * 1024
    disk: DiskGuard | None = None
    renderer: renderer_pb2_grpc.RendererServiceStub | None = None  # previews (status.preview)
    preview_limiter: RateLimiter | None = None
    web_dir: PathLike | None = None  # built web apps (web/dist); default: the checkout's
    chain: ChainDeps | None = None
    claims: ClaimTokens | None = None  # without a chain, the 202 still carries a claim token (status.jobs.claims)
    ops: OpsConfig | None = None  # the operators' dashboard and its API (status.admin_api)
    ipfs_gateway: str | None = None  # where /ipfs/{cid} sends what is not stored here (STATUS_IPFS_GATEWAY_URL)
    replica: Callable[[], dict[str, Any]] | None = None  # name and leadership, for /healthz (status.replicas.leader)


def client_ip(request: Request, trust_forwarded_for: bool) -> str:
    """The address to rate-limit. Behind our proxy, the rightmost X-Forwarded-For entry is the one the proxy
    appended (the peer it saw); everything left of it came from the client, which can write anything there,
    so taking the leftmost would let a client pick a fresh address per request. Several header lines count
    as one list in order (RFC 9110), since some proxies add a line rather than extend the client's."""
    if trust_forwarded_for:
        entries = [e.strip() for line in request.headers.getlist("x-forwarded-for") for e in line.split(",")]
        entries = [e for e in entries if e]
        if entries:
            return entries[-1]
    return request.client.host if request.client else "unknown"


def create_app(deps: BridgeDeps) -> FastAPI:
    app = FastAPI(title="mintpipe", version="1", description="Generative-art settings in, pinned NFTs out.")
    registry = CollectorRegistry()
    submissions = Counter("mintpipe_submissions_total", "POST /v1/jobs outcomes", ["outcome"], registry=registry)
    register_chain_metrics(registry, deps.chain)
    app.add_middleware(BodySizeLimit, limit=deps.max_body_bytes)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    view = JobView(deps.chain)
    submitter = Submitter(deps.gateway, submissions, deps.ip_limiter, deps.disk,
                          deps.claims or (deps.chain.claims if deps.chain else None))
    # Well-formed submissions skip the framework's stack; the route below still serves the rest (submit_route).
    install_fast_path(app, submitter, deps.max_body_bytes,
                      lambda request: client_ip(request, deps.trust_forwarded_for))

    @app.post("/v1/jobs", status_code=202, response_model=SubmitJobAccepted, responses=ERRORS,
              response_model_exclude_none=True)  # no claim_token without a key: the lean route's bytes
    async def submit_job(
        body: SubmitJobBody,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> dict[str, Any]:
        doc, url = await submitter.submit(body, idempotency_key,
                                          lambda: client_ip(request, deps.trust_forwarded_for))
        response.headers["Location"] = url
        return doc

    async def known_job(job_id: str) -> JobRecord:
        # SPEC: an unknown id is a 404, and an id of the wrong shape is unknown too (it was never issued).
        record = await deps.store.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if record is None:
            raise ApiError(404, "not_found", "no job with this id (job ids are 32 lowercase hex digits)", "job_id")
        return record

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
    async def get_job(job_id: str) -> dict[str, Any]:
        return await view.doc(await known_job(job_id))

    @app.get("/v1/jobs/{job_id}/events", responses={200: {"content": {"text/event-stream": {}}}, **ERRORS})
    async def job_events(
        job_id: str,
        until: Annotated[str, Query(pattern="^(pinned|minted)$",
                                    description="end the stream at pinned (default) or go on until minted")] = "pinned",
    ) -> EventSourceResponse:
        await known_job(job_id)
        terminal = TERMINAL_STAGES if until == "pinned" else UNTIL_MINTED

        async def stream() -> Any:
            status_metrics.SSE_CLIENTS.inc()
            try:
                async for record in deps.bus.watch(job_id, deps.store.get, terminal):
                    yield {"event": "job", "id": f"{record.updated_at:.6f}", "data": json.dumps(await view.doc(record))}
            finally:
                status_metrics.SSE_CLIENTS.dec()

        return EventSourceResponse(stream(), ping=15)

    @app.get("/v1/jobs", response_model=JobPage, responses=ERRORS)
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
            records, next_cursor = await deps.store.list(
                wallet=wallet_filter, stage=STAGES_BY_NAME.get(stage or "", 0), limit=limit, cursor=cursor or "")
        except BadCursor as exc:
            raise ApiError(400, "invalid_argument", f"cursor: {exc}", "cursor") from None
        await view.prefetch(records)  # one SignVouchers call for the page's pinned jobs
        return {"jobs": [await view.doc(r) for r in records], "next_cursor": next_cursor or None}

    @app.get("/v1/scenes")
    async def scenes() -> dict[str, Any]:
        return {"scenes": describe_scenes()}

    # The stored object in its own content type (image/gif, video/mp4, application/json, ...).
    @app.get("/ipfs/{cid}", responses={200: {"content": {"*/*": {}}},
                                        307: {"description": "not stored here: the configured IPFS gateway"},
                                        **ERRORS})
    async def ipfs(cid: Annotated[str, Path(max_length=200)], request: Request) -> Response:
        if not is_cid(cid):
            raise ApiError(400, "invalid_argument", "cid: not a valid CID", "cid")
        stored = await asyncio.to_thread(deps.ipfs.get, cid)  # a stat, or a HEAD request on the object store
        if stored is None and deps.ipfs_gateway:
            # Pinned elsewhere (Pinata keeps no local copy): the same CID from the operator's gateway.
            return RedirectResponse(f"{deps.ipfs_gateway.rstrip('/')}/ipfs/{cid}", status_code=307)
        if stored is None:
            raise ApiError(404, "not_found", f"{cid} is not pinned here", "cid")
        # Content-addressed: the bytes behind a CID never change.
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{cid}"'}
        if stored.path is None:  # in the object store: streamed through, byte ranges too (status.ipfs_serve)
            return object_response(deps.ipfs, stored, headers, request.headers.get("range"))
        return FileResponse(stored.path, media_type=stored.content_type, headers=headers)

    @app.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
    async def healthz() -> JSONResponse:
        results: dict[str, bool] = {}
        for name, check in deps.checks.items():
            try:
                outcome = check()
                results[name] = bool(await outcome if hasattr(outcome, "__await__") else outcome)
            except Exception:  # a failing probe is a failing check
                results[name] = False
        ok = all(results.values())
        body: dict[str, Any] = {"status": "ok" if ok else "degraded", "checks": results}
        if deps.disk is not None:
            body["disk"] = deps.disk.snapshot()
        if deps.replica is not None:
            body["replica"] = deps.replica()
        return JSONResponse(body, 200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        # The bridge's own, the status service's (events, stage durations, queues of the whole pipeline: see
        # status.admin_api) and what every consumer in this process counts (mintpipe.metrics).
        ops_metrics = getattr(app.state, "ops_metrics", None)
        status_part = await ops_metrics() if ops_metrics is not None else generate_latest(status_metrics.REGISTRY)
        body = generate_latest(registry) + status_part + generate_latest(shared_metrics.REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    if deps.admin is not None:
        bearer_routes = create_admin_router(deps.admin)
        app.include_router(bearer_routes)
        mount_operators(app, deps.admin, bearer_routes, deps.ops,
                        lambda request: client_ip(request, deps.trust_forwarded_for), deps.chain)
    if deps.renderer is not None:
        app.include_router(create_preview_router(
            deps.renderer, deps.preview_limiter, lambda request: client_ip(request, deps.trust_forwarded_for)))
    app.include_router(create_page_router(deps.web_dir))
    app.include_router(create_chain_router(deps.chain, known_job,
                                           lambda request: client_ip(request, deps.trust_forwarded_for)))
    drop_unused_validation_responses(app)
    return app

