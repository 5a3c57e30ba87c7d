"""POST /v1/jobs: what a submission does (Submitter), and a lean way in for it (SubmitFastPath).

The route stays declared in FastAPI (status.bridge.jobs), so /openapi.json documents it as before, and every request
that is not plainly well formed still goes through it: FastAPI's body parsing, validation and error handlers answer
those exactly as they always did. A well-formed submission (a JSON object body of a declared length within the
limit, `Content-Type: application/json`, at most one Idempotency-Key) is answered here instead, by the same
Submitter and with the same response classes, so its status, body and headers are those of the route.

Why: measured with py-spy at ~200 submissions a second, FastAPI's middleware stack, routing, dependency solving
and response-model validation were about half of the bridge's own CPU per submission (the other half: the gRPC
call and the request's parsing); docs/benchmarks.md, "Fewer gRPC round trips".
"""

from __future__ import annotations

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

from mintpipe.core.scenes import MAX_SETTINGS_JSON, SETTINGS_TOO_LARGE
from mintpipe.core.stages import stage_name
from mintpipe.limits.memory import RateLimiter
from mintpipe.rpc.batch import BatchedCall, status_code
from mintpipe.rpc.coalesce import Coalescer, Unavailable
from mintpipe.runtime.disk import DiskGuard
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import gateway_pb2, gateway_pb2_grpc
from status.errors import ApiError, BodySizeLimit, error_body, from_grpc, from_status
from status.jobs.claims import ClaimTokens

MAX_BATCH = 256  # the gateway takes at most gateway.service.MAX_BATCH submissions in one SubmitJobs call
# And their bytes: gRPC takes at most 4 MiB in one message. A submission is at most ~17 KiB once the settings are
# capped at the gateway's own limit (MAX_SETTINGS_JSON), so a batch of large ones is ~60 of them.
MAX_BATCH_BYTES = 1 << 20
# What a whole batch's failure says to each of its submissions: the pipeline's own fault (500) or its capacity
# (503). Any other code of a whole call (e.g. RESOURCE_EXHAUSTED for a message over the limit) is no caller's fault.
_BATCH_FAILURES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN,
                   grpc.StatusCode.INTERNAL)

log = get_logger("status.submit_route")

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

    The submissions that arrive while the calls to the gateway are in flight go together in the next one
    (SubmitJobs, mintpipe.rpc.coalesce): one gRPC round trip for many at capacity, each answered as SubmitJob
    would answer it alone. A lone submission goes at once."""

    def __init__(self, gateway: gateway_pb2_grpc.GatewayServiceStub, submissions: Counter,
                 ip_limiter: RateLimiter | None, disk: DiskGuard | None, claims: ClaimTokens | None = None) -> None:
        self.gateway, self.submissions, self.ip_limiter, self.disk = gateway, submissions, ip_limiter, disk
        self.claims = claims  # the 202 carries the job's claim token (status.jobs.claims)
        self._send = BatchedCall("submit", self._submit_batched, self._submit_one)
        self._batch: Coalescer[gateway_pb2.SubmitJobRequest, gateway_pb2.SubmitJobResponse] = Coalescer(
            self._send, MAX_BATCH, name="submit", size=gateway_pb2.SubmitJobRequest.ByteSize,
            max_bytes=MAX_BATCH_BYTES)

    async def _submit_batched(self, requests: list[gateway_pb2.SubmitJobRequest]) -> list[object]:
        reply = await self.gateway.SubmitJobs(gateway_pb2.SubmitJobsRequest(submissions=requests), timeout=15)
        return [outcome.reply if outcome.code == 0 else
                from_status(status_code(outcome.code), outcome.details, lambda wait=outcome.retry_after: wait or None)
                for outcome in reply.outcomes]

    async def _submit_one(self, request: gateway_pb2.SubmitJobRequest) -> object:
        try:
            return await self.gateway.SubmitJob(request, timeout=15)
        except grpc.aio.AioRpcError as exc:
            return from_grpc(exc)

    async def submit(self, body: SubmitJobBody, idempotency_key: str | None,
                     client_ip: Callable[[], str]) -> tuple[dict[str, Any], str]:
        """The 202's body and its Location; raises ApiError for every refusal, and for any fault of ours (500, in
        the error shape every other answer has rather than a bare text)."""
        try:
            return await self._submit(body, idempotency_key, client_ip)
        except ApiError:
            raise
        except Exception as exc:
            log.error("submission failed", error=repr(exc))
            self.submissions.labels("internal").inc()
            raise ApiError(500, "internal", "the gateway failed on this request; it has been logged") from None

    async def _submit(self, body: SubmitJobBody, idempotency_key: str | None,
                      client_ip: Callable[[], str]) -> tuple[dict[str, Any], str]:
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
        settings_json = json.dumps(body.settings)
        if len(settings_json) > MAX_SETTINGS_JSON:  # the gateway's own refusal, before it can weigh on a batch
            self.submissions.labels("invalid_argument").inc()
            raise ApiError(400, "invalid_argument", f"settings: {SETTINGS_TOO_LARGE}", "settings")
        submit = gateway_pb2.SubmitJobRequest(
            scene=body.scene or "", settings_json=settings_json, wallet=body.wallet,
            idempotency_key=idempotency_key or "",
        )
        try:
            reply = await self._batch.call(submit)
        except ApiError as error:  # this submission refused
            self.submissions.labels(error.code).inc()
            raise
        except Unavailable as exc:  # the whole batch's call failed, or it waited too long for one
            cause = exc.cause.code() if isinstance(exc.cause, grpc.aio.AioRpcError) else None
            error = from_status(cause if cause in _BATCH_FAILURES else grpc.StatusCode.UNAVAILABLE, "",
                                lambda: None)
            log.warning("submission batch failed", error=str(exc))
            self.submissions.labels(error.code).inc()
            raise error from None
        self.submissions.labels("accepted").inc()
        url = f"/v1/jobs/{reply.job_id}"
        doc = {"job_id": reply.job_id, "stage": stage_name(reply.stage), "status_url": url}
        if self.claims is not None:
            doc["claim_token"] = self.claims.token(reply.job_id)
        return doc, url


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
        repeated = False  # a header given twice: FastAPI decides what that means, as it always did
        for name, value in scope["headers"]:
            if name == b"content-type":
                repeated, content_type = repeated or content_type is not None, value.lower()
            elif name == b"content-length":
                repeated, length = repeated or length is not None, value
            elif name == b"idempotency-key":
                repeated, key = repeated or key is not None, value
        if (repeated or content_type not in _JSON_TYPES or length is None or not length.isdigit()
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
        # The lean route stands in front of the app's own middleware, so it must do what they do: it enforces
        # BodySizeLimit's limit itself and knows of nothing else. Middleware added later would be skipped
        # silently for the submissions it takes, so the app refuses to start instead.
        added = [m.cls for m in app.user_middleware]
        if added != [BodySizeLimit]:
            raise RuntimeError(f"the lean POST /v1/jobs accounts for BodySizeLimit alone, not {added}: "
                               "teach SubmitFastPath the new middleware's effect first")
        stack = build()
        stack.app = SubmitFastPath(stack.app, submitter, max_body_bytes, client_ip)
        return stack

    app.build_middleware_stack = build_with_fast_path
