"""The emulator's HTTP routes (one server plays both api.* and uploads.* hosts)."""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from typing import Annotated, Any

from fastapi import FastAPI, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from mintpipe.core.cid import cid_of_bytes
from pinata_emulator.state import EmulatorState, Fault, Pin

UNLIMITED = ("/_emulator", "/ipfs/", "/docs", "/openapi.json")


def _error(status: int, reason: str, details: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"reason": reason, "details": details}}, status_code=status, headers=headers)


def _legacy_row(pin: Pin) -> dict[str, Any]:
    return {"id": pin.id, "ipfs_pin_hash": pin.cid, "size": pin.size, "user_id": "emulator",
            "date_pinned": pin.created_at, "date_unpinned": None, "mime_type": pin.mime_type,
            "number_of_files": 1, "metadata": {"name": pin.name, "keyvalues": pin.keyvalues or None},
            "regions": []}


def _v3_file(pin: Pin, duplicate: bool | None = None) -> dict[str, Any]:
    data = {"id": pin.id, "name": pin.name, "cid": pin.cid, "size": pin.size, "number_of_files": 1,
            "mime_type": pin.mime_type, "group_id": None, "keyvalues": pin.keyvalues, "created_at": pin.created_at,
            "network": "public"}
    if duplicate is not None:
        data["is_duplicate"] = duplicate
    return data


def _json_field(raw: str | None, field: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{field} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be a JSON object")
    return value


class FaultIn(BaseModel):
    status: int = 0
    delay: float = 0.0
    count: int = 1
    retry_after: int | None = None
    wrong_cid: bool = False
    delay_after: float = 0.0
    for_seconds: float = Field(0.0, ge=0, description="an outage: every request for this long (count ignored)")


def create_app(state: EmulatorState) -> FastAPI:
    app = FastAPI(title="Pinata emulator", description=__doc__)
    app.state.emulator = state

    @app.middleware("http")
    async def protocol(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith(UNLIMITED):
            return await call_next(request)
        params = request.query_params
        entry = state.attempt(request.method, request.url.path, params.get("cid") or params.get("hashContains"))
        response = await _answer(request, call_next)
        entry["status"] = response.status_code
        entry["retry_after"] = response.headers.get("Retry-After")
        return response

    async def _answer(request: Request, call_next: Any) -> Response:
        fault = state.next_fault()
        if fault is not None:
            state.stats["faults"] += 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status:
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
                return _error(fault.status, "INJECTED_FAULT", f"emulated {fault.status}", headers)
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), state.jwt.encode()):
            return _error(401, "INVALID_CREDENTIALS", "Invalid/expired credentials!")
        allowed, limit, remaining, reset = state.admit()
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Reset": str(math.ceil(reset))}
        if not allowed:
            wait = max(1, math.ceil(reset - time.time()))
            return _error(429, "RATE_LIMITED", f"rate limit of {limit} requests per minute exceeded",
                          {**headers, "Retry-After": str(wait)})
        request.state.wrong_cid = bool(fault and fault.wrong_cid)
        # call_next returns once the route has built its answer, so by now an upload is stored and counted.
        response = await call_next(request)
        if fault is not None and fault.delay_after:
            await asyncio.sleep(fault.delay_after)
        response.headers.update(headers)
        return response

    @app.get("/data/testAuthentication")
    async def test_authentication() -> dict[str, str]:
        return {"message": "Congratulations! You are communicating with the Pinata API!"}

    async def _store(data: bytes, name: str, keyvalues: dict[str, Any], mime: str,
                     corrupt: bool = False) -> tuple[Pin, bool]:
        cid = await asyncio.to_thread(cid_of_bytes, data + b"\0" if corrupt else data)
        return state.add_pin(cid, data, name, keyvalues, mime)

    def _legacy_answer(pin: Pin, duplicate: bool) -> dict[str, Any]:
        return {"IpfsHash": pin.cid, "PinSize": pin.size, "Timestamp": pin.created_at, "isDuplicate": duplicate}

    @app.post("/pinning/pinFileToIPFS")
    async def pin_file(request: Request, file: UploadFile, pinataMetadata: Annotated[str | None, Form()] = None,
                       pinataOptions: Annotated[str | None, Form()] = None) -> Any:
        try:
            meta = _json_field(pinataMetadata, "pinataMetadata")
            options = _json_field(pinataOptions, "pinataOptions")
        except ValueError as exc:
            return _error(400, "INVALID_REQUEST", str(exc))
        if options.get("wrapWithDirectory"):
            return _error(400, "INVALID_REQUEST", "wrapWithDirectory is not emulated")
        data = await file.read()
        if len(data) > state.max_upload_bytes:
            return _error(413, "FILE_TOO_LARGE", f"over {state.max_upload_bytes} bytes")
        pin, duplicate = await _store(data, meta.get("name") or file.filename or "", meta.get("keyvalues") or {},
                                      file.content_type or "application/octet-stream", request.state.wrong_cid)
        return _legacy_answer(pin, duplicate)

    @app.post("/pinning/pinJSONToIPFS")
    async def pin_json(request: Request) -> Any:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "INVALID_REQUEST", "body is not valid JSON")
        if not isinstance(body, dict) or "pinataContent" not in body:
            return _error(400, "INVALID_REQUEST", "pinataContent is required")
        meta = body.get("pinataMetadata") or {}
        # Pinata stores the content as JSON.stringify would write it: compact, keys in the order sent.
        data = json.dumps(body["pinataContent"], separators=(",", ":"), ensure_ascii=False).encode()
        pin, duplicate = await _store(data, meta.get("name", ""), meta.get("keyvalues") or {}, "application/json")
        return _legacy_answer(pin, duplicate)

    @app.get("/data/pinList")
    async def pin_list(hashContains: str | None = None, cid: str | None = None, status: str = "all",
                       pageLimit: Annotated[int, Query(ge=1, le=1000)] = 10,
                       pageOffset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        wanted = hashContains or cid
        rows = [p for p in state.pins.values() if not wanted or wanted in p.cid]
        return {"count": len(rows), "rows": [_legacy_row(p) for p in rows[pageOffset:pageOffset + pageLimit]]}

    @app.post("/v3/files")
    async def upload_v3(request: Request, file: UploadFile, network: Annotated[str, Form()] = "private",
                        name: Annotated[str | None, Form()] = None,
                        keyvalues: Annotated[str | None, Form()] = None) -> Any:
        if network != "public":
            return _error(400, "INVALID_REQUEST", "only network=public is emulated (content served by CID)")
        try:
            kv = _json_field(keyvalues, "keyvalues")
        except ValueError as exc:
            return _error(400, "INVALID_REQUEST", str(exc))
        data = await file.read()
        if len(data) > state.max_upload_bytes:
            return _error(413, "FILE_TOO_LARGE", f"over {state.max_upload_bytes} bytes")
        pin, duplicate = await _store(data, name or file.filename or "", kv,
                                      file.content_type or "application/octet-stream", request.state.wrong_cid)
        return {"data": _v3_file(pin, duplicate)}

    @app.get("/v3/files/{network}")
    async def list_v3(network: str, cid: str | None = None, name: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 10) -> Any:
        if network != "public":
            return {"data": {"files": [], "next_page_token": ""}}
        files = [p for p in state.pins.values() if (not cid or p.cid == cid) and (not name or p.name == name)]
        return {"data": {"files": [_v3_file(p) for p in files[:limit]], "next_page_token": ""}}

    @app.get("/ipfs/{cid}")
    async def gateway(cid: str) -> Response:
        pin = state.pins.get(cid)
        if pin is None:
            return _error(404, "NOT_FOUND", f"{cid} is not pinned")
        return Response(pin.data, media_type=pin.mime_type)

    @app.post("/_emulator/faults")
    async def add_fault(fault: FaultIn) -> dict[str, int]:
        until = time.time() + fault.for_seconds if fault.for_seconds else 0.0
        state.faults.append(Fault(fault.status, fault.delay, fault.count, fault.retry_after, fault.wrong_cid,
                                  fault.delay_after, until))
        return {"queued": len(state.faults)}

    @app.get("/_emulator/stats")
    async def stats() -> dict[str, Any]:
        return state.snapshot()

    @app.get("/_emulator/requests")
    async def requests_log(since: float = 0.0) -> list[dict[str, Any]]:
        """API requests that arrived at or after `since` (epoch seconds), oldest first: method, path, the CID
        asked about (list by CID), the answer's status and when the request arrived."""
        return state.requests_since(since)

    @app.post("/_emulator/config")
    async def configure(rate_limit: int | None = None, window_seconds: float | None = None) -> dict[str, Any]:
        if rate_limit is not None:
            state.rate_limit = rate_limit
        if window_seconds is not None:
            state.window_seconds = window_seconds
        return state.snapshot()

    return app
