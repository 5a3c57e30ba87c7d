"""One error shape for every 4xx/5xx the bridge returns: {"error": {"code", "field", "message"}}."""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send


class ErrorDetail(BaseModel):
    code: str
    field: str | None
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "field": field, "message": message}}


async def api_error_handler(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status,
                        headers=exc.headers)


async def validation_error_handler(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422s become 400s that name the field as the client wrote it."""
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    if first.get("type") == "json_invalid":
        return JSONResponse(error_body("invalid_argument", f"malformed JSON: {first.get('msg')}", "body"), 400)
    field = ".".join(loc) if loc else "body"
    return JSONResponse(error_body("invalid_argument", f"{field}: {first.get('msg')}", field), 400)


async def http_exception_handler(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {400: "invalid_argument", 404: "not_found", 405: "method_not_allowed",
            413: "payload_too_large"}.get(exc.status_code, "error")
    # Starlette's own 400 is a body it could not parse (e.g. an integer of more than 4300 digits).
    field = "body" if exc.status_code == 400 else None
    return JSONResponse(error_body(code, str(exc.detail), field), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


def from_grpc(exc: grpc.aio.AioRpcError) -> ApiError:
    """Map a gateway error onto HTTP. The gateway's details start with the offending field."""
    return from_status(exc.code(), exc.details() or "", lambda: dict(exc.trailing_metadata() or ()).get("retry-after"))


def from_status(status: grpc.StatusCode, details: str, retry_after: Any) -> ApiError:
    """As from_grpc, from the parts: `retry_after()` gives the gateway's retry-after (None: not given)."""
    field, _, message = details.partition(": ")
    if not message:
        field, message = None, details
    if status == grpc.StatusCode.INVALID_ARGUMENT:
        return ApiError(400, "invalid_argument", details, field)
    if status == grpc.StatusCode.ALREADY_EXISTS:
        return ApiError(409, "conflict", details, field)
    if status == grpc.StatusCode.RESOURCE_EXHAUSTED:
        wait = retry_after()
        return ApiError(429, "resource_exhausted", details, field, {"Retry-After": str(wait or "60")})
    if status in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        # A fault of ours, not of the pipeline's capacity: saying "retry" would only repeat it. No details:
        # they may carry internals.
        return ApiError(500, "internal", "the gateway failed on this request; it has been logged", None)
    # UNAVAILABLE, DEADLINE_EXCEEDED and the rest: the client may retry with its key.
    return ApiError(503, "unavailable", "the pipeline cannot take jobs right now; retry with the same "
                    "Idempotency-Key", None, {"Retry-After": "2"})


class BodySizeLimit:
    """Refuses bodies over `limit` bytes with 413 before anything reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(send)
            return
        received, too_large = 0, False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Raising here would be caught by the framework's body parsing and become a 400; a
                    # disconnect stops the app reading instead, and whatever it answers is dropped below.
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not too_large:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(error_body("payload_too_large", f"request body over {self.limit} bytes", "body"),
                                status_code=413)
        await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}
