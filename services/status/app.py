"""The HTTP app: the front end's routes (status.bridge) and the operators' (status.ops) meet here, with
/healthz and /metrics, the error shape and the body limit. status.__main__ serves it with uvicorn."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as PathLike
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mintpipe.limits.memory import RateLimiter
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.runtime import metrics as shared_metrics
from mintpipe.runtime.disk import DiskGuard
from mintpipe.v1 import gateway_pb2_grpc, renderer_pb2_grpc
from status import metrics as status_metrics
from status.bridge.chain import create_chain_router, register_chain_metrics
from status.bridge.jobs import create_jobs_router, known_job_of
from status.bridge.pages import create_page_router
from status.bridge.preview import create_preview_router
from status.bridge.submit import Submitter, install_fast_path
from status.errors import ApiError, BodySizeLimit, api_error_handler, http_exception_handler, validation_error_handler
from status.jobs.bus import JobBus
from status.jobs.claims import ClaimTokens
from status.jobs.store import JobStore
from status.jobs.view import JobView
from status.minting import ChainDeps
from status.ops.actions import AdminDeps, create_admin_router
from status.ops.views import OpsConfig, mount_operators


class ReplicaOut(BaseModel):
    name: str = Field(description="the replica's name (STATUS_REPLICA_NAME, MINTPIPE_REPLICA, else host:pid)")
    leader: bool = Field(description="this replica runs the sweepers and the chain watcher (one at a time)")


class HealthOut(BaseModel):
    status: str = Field(description="ok, or degraded when a check fails (503)")
    checks: dict[str, bool]
    disk: dict[str, float] | None = Field(None, description="the data volume: total_bytes, free_bytes, "
                                          "free_percent, and the thresholds (degraded, new jobs refused)")
    replica: ReplicaOut | None = Field(None, description="which status replica answered, and whether it leads")


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
    ipfs: LocalIpfsStore  # or mintpipe.objects.ipfs_s3.S3IpfsStore, with MINTPIPE_ARTIFACTS_URL=s3://...
    checks: dict[str, Callable[[], Any]]
    admin: AdminDeps | None = None
    ip_limiter: RateLimiter | None = None
    trust_forwarded_for: bool = False
    max_body_bytes: int = 64 * 1024
    disk: DiskGuard | None = None
    renderer: renderer_pb2_grpc.RendererServiceStub | None = None  # previews (status.bridge.preview)
    preview_limiter: RateLimiter | None = None
    web_dir: PathLike | None = None  # built web apps (web/dist); default: the checkout's
    chain: ChainDeps | None = None
    claims: ClaimTokens | None = None  # without a chain, the 202 still carries a claim token (status.jobs.claims)
    ops: OpsConfig | None = None  # the operators' dashboard and its API (status.ops.views)
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
    # Well-formed submissions skip the framework's stack; the route (status.bridge.jobs) still serves the rest.
    install_fast_path(app, submitter, deps.max_body_bytes,
                      lambda request: client_ip(request, deps.trust_forwarded_for))

    app.include_router(create_jobs_router(deps.store, deps.bus, view, submitter, deps.ipfs, deps.ipfs_gateway,
                                          lambda request: client_ip(request, deps.trust_forwarded_for)))

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
        # status.ops.views) and what every consumer in this process counts (mintpipe.runtime.metrics).
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
    app.include_router(create_chain_router(deps.chain, known_job_of(deps.store),
                                           lambda request: client_ip(request, deps.trust_forwarded_for)))
    drop_unused_validation_responses(app)
    return app

