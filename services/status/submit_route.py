"""POST /v1/jobs: what a submission does (Submitter), and a lean way in for it (SubmitFastPath).

The route stays declared in FastAPI (status.http_api), so /openapi.json documents it as before, and every request
that is not plainly well formed still goes through it: FastAPI's body parsing, validation and error handlers answer
those exactly as they always did. A well-formed submission (a JSON object body of a declared length within the
limit, `Content-Type: application/json`, at most one Idempotency-Key) is answered here instead, by the same
Submitter and with the same response classes, so its status, body and headers are those of the route.

Why: measured with py-spy at ~200 submissions a second, FastAPI's middleware stack, routing, dependency solving
and response-model validation were about half of the bridge's own CPU per submission (the other half: the gRPC
call and the request's parsing); see bench/README.md.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable
from typing import Any

import grpc
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mintpipe.coalesce import Coalescer
from mintpipe.disk import DiskGuard
from mintpipe.events import stage_name
from mintpipe.ratelimit import RateLimiter
from mintpipe.v1 import gateway_pb2, gateway_pb2_grpc
from status.http_errors import ApiError, error_body, from_grpc, from_status

_CODES = {code.value[0]: code for code in grpc.StatusCode}
MAX_BATCH = 256  # the gateway takes at most gateway.service.MAX_BATCH submissions in one SubmitJobs call

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class SubmitJobBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"settings": {"seed": 7}, "wallet": "0x000000000000000000000000000000000000dEaD"}]})
    settings: dict[str, Any] = Field(description="the scene's settings; see GET /v1/scenes for the schema")
    wallet: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$",
                        description="0x-prefixed Ethereum address that will own the token (EIP-55 when mixed-case)")
    scene: str | None = Field(None, description="scene name; default gen1")


class Submitter:
    """One submission: the per-address limit, the key's form, the disk, then the gateway (which validates,
    reserves the job in the store and has the render job confirmed by the broker before it answers).

    The submissions that arrive while a call to the gateway is in flight go together in the next one
    (SubmitJobs, mintpipe.coalesce): one gRPC round trip for many at capacity, each answered as SubmitJob
    would answer it alone. A lone submission goes at once."""

    def __init__(self, gateway: gateway_pb2_grpc.GatewayServiceStub, submissions: Counter,
                 ip_limiter: RateLimiter | None, disk: DiskGuard | None) -> None:
        self.gateway, self.submissions, self.ip_limiter, self.disk = gateway, submissions, ip_limiter, disk
        self._batch: Coalescer[gateway_pb2.SubmitJobRequest, gateway_pb2.SubmitJobResponse] = Coalescer(
            self._send, MAX_BATCH, name="submit")
        self._batched = True  # False against a gateway without SubmitJobs (an older version)

    async def _send(self, requests: list[gateway_pb2.SubmitJobRequest]) -> list[object]:
        if self._batched:
            try:
                reply = await self.gateway.SubmitJobs(gateway_pb2.SubmitJobsRequest(submissions=requests),
                                                      timeout=15)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._batched = False
            else:
                return [outcome.reply if outcome.code == 0 else
                        from_status(_CODES.get(outcome.code, grpc.StatusCode.UNKNOWN), outcome.details,
                                    lambda wait=outcome.retry_after: wait or None)
                        for outcome in reply.outcomes]

        async def one(request: gateway_pb2.SubmitJobRequest) -> object:
            try:
                return await self.gateway.SubmitJob(request, timeout=15)
            except grpc.aio.AioRpcError as exc:
                return from_grpc(exc)
        return [await one(requests[0])] if len(requests) == 1 else list(
            await asyncio.gather(*(one(r) for r in requests)))

    async def submit(self, body: SubmitJobBody, idempotency_key: str | None,
                     client_ip: Callable[[], str]) -> tuple[dict[str, Any], str]:
        """The 202's body and its Location; raises ApiError for every refusal."""
        if self.ip_limiter is not None:
            wait = await self.ip_limiter.take(client_ip())
            if wait > 0:
                self.submissions.labels("rate_limited").inc()
                raise ApiError(429, "rate_limited", f"too many submissions from this address; retry in "
                               f"{math.ceil(wait)} s", None, {"Retry-After": str(math.ceil(wait))})
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            raise ApiError(400, "invalid_argument", "Idempotency-Key: 1-255 visible ASCII characters",
                           "Idempotency-Key")
        if self.disk is not None and (full := self.disk.refusal()):
            self.submissions.labels("disk_full").inc()
            raise ApiError(503, "unavailable", full, "disk", {"Retry-After": "60"})
        submit = gateway_pb2.SubmitJobRequest(
            scene=body.scene or "", settings_json=json.dumps(body.settings), wallet=body.wallet,
            idempotency_key=idempotency_key or "",
        )
        try:
            reply = await self._batch.call(submit)
        except grpc.aio.AioRpcError as exc:  # the whole batch's call failed
            error = from_grpc(exc)
            self.submissions.labels(error.code).inc()
            raise error from None
        except ApiError as error:  # this submission refused
            self.submissions.labels(error.code).inc()
            raise
        self.submissions.labels("accepted").inc()
        url = f"/v1/jobs/{reply.job_id}"
        return {"job_id": reply.job_id, "stage": stage_name(reply.stage), "status_url": url}, url


_JSON_TYPES = (b"application/json", b"application/json; charset=utf-8")


class SubmitFastPath:
    """ASGI: well-formed POST /v1/jobs answered by `submitter` directly; everything else (and every submission
    it is not sure of) to `app`, the body it read handed on unchanged."""

    def __init__(self, app: ASGIApp, submitter: Submitter, max_body_bytes: int,
                 client_ip: Callable[[Request], str]) -> None:
        self.app, self.submitter, self.limit, self.client_ip = app, submitter, max_body_bytes, client_ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/jobs" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        content_type = length = key = None
        keys = 0
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.lower()
            elif name == b"content-length":
                length = value
            elif name == b"idempotency-key":
                key, keys = value, keys + 1
        if (content_type not in _JSON_TYPES or keys > 1 or length is None or not length.isdigit()
                or int(length) > self.limit):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.limit or not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        body = None
        if size <= self.limit:
            try:
                parsed = json.loads(raw)
                if isinstance(parsed, dict):
                    body = SubmitJobBody.model_validate(parsed)
            except (ValueError, RecursionError, ValidationError):
                body = None
        if body is None:  # FastAPI answers it, as it always did
            await self.app(scope, _replay(raw, size > self.limit, receive), send)
            return
        try:
            doc, url = await self.submitter.submit(
                body, key.decode("latin-1") if key is not None else None,
                lambda: self.client_ip(Request(scope)))
        except ApiError as exc:
            response = JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status,
                                    headers=exc.headers)
        else:
            response = JSONResponse(doc, status_code=202)
            response.raw_headers.append((b"location", url.encode("latin-1")))
        await response(scope, receive, send)


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A receive that gives `body` first (as one message), then whatever the client still sends."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replayed


def install_fast_path(app: Any, submitter: Submitter, max_body_bytes: int,
                      client_ip: Callable[[Request], str]) -> None:
    """Puts SubmitFastPath just inside the app's ServerErrorMiddleware (so an unexpected error is still a 500 in
    the usual form), in front of the rest of FastAPI's stack."""
    build = app.build_middleware_stack

    def build_with_fast_path() -> ASGIApp:
        stack = build()
        stack.app = SubmitFastPath(stack.app, submitter, max_body_bytes, client_ip)
        return stack

    app.build_middleware_stack = build_with_fast_path
