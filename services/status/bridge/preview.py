"""POST /v1/preview: a still of the given settings, drawn by a renderer replica over gRPC (RenderPreview).

The bridge balances previews over every replica with gRPC's round_robin policy on one target that resolves
to each of them (`STATUS_RENDERER_TARGET`: in compose `dns:///renderer:50061`, which Docker's DNS answers with
every replica's address; the launcher gives `ipv4:127.0.0.1:P1,127.0.0.1:P2,...`). A replica that is down is
skipped by the policy. Settings are checked here first, so bad input costs no round trip and gets the same
field-named words the gateway gives a submission. The channel itself is made by status.clients.renderer_channel.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import grpc
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mintpipe.core.scenes import DEFAULT_SCENE, SettingsError, validate_settings
from mintpipe.limits.memory import RateLimiter
from mintpipe.v1 import renderer_pb2, renderer_pb2_grpc
from status.clients import PREVIEW_TIMEOUT
from status.errors import ApiError, ErrorOut


class PreviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"settings": {"seed": 7}}]})
    settings: dict[str, Any] = Field(description="the scene's settings (GET /v1/scenes); missing ones take defaults")
    scene: str | None = Field(None, description="scene name; default gen1")
    size: int | None = Field(None, ge=64, le=512, description="pixels of the still (default 256)")


class PreviewOut(BaseModel):
    scene: str
    settings: dict[str, Any]
    settings_hash: str
    size: int
    frame: int
    image: str = Field(description="the still as a data: URL (image/png)")
    replica: str
    cached: bool = Field(description="answered from the replica's cache")


def _wants_json(request: Request) -> bool:
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "image/png" not in accept


def create_preview_router(renderer: renderer_pb2_grpc.RendererServiceStub,
                          limiter: RateLimiter | None = None,
                          client_ip: Any = None) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/preview", response_model=PreviewOut,
                 responses={200: {"content": {"image/png": {}}, "description": "the still (PNG), or its JSON twin "
                                  "with Accept: application/json or ?format=json"},
                            **{code: {"model": ErrorOut} for code in (400, 413, 429, 503)}})
    async def preview(body: PreviewBody, request: Request) -> Any:
        scene = body.scene or DEFAULT_SCENE
        try:
            settings = validate_settings(scene, body.settings)
        except SettingsError as exc:
            raise ApiError(400, "invalid_argument", str(exc), exc.field) from None
        if limiter is not None and client_ip is not None:
            wait = await limiter.take(client_ip(request))
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                raise ApiError(429, "rate_limited", f"preview: too many previews from this address; retry in "
                               f"{seconds} s", "preview", {"Retry-After": str(seconds)})
        call = renderer_pb2.RenderPreviewRequest(scene=scene, settings_json=json.dumps(settings),
                                                 size=body.size or 0)
        try:
            still = await renderer.RenderPreview(call, timeout=PREVIEW_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise _preview_error(exc) from None
        headers = {"ETag": f'"{still.settings_hash}-{still.size}-{still.renderer_version}"',
                   "Cache-Control": "private, max-age=3600", "X-Settings-Hash": still.settings_hash,
                   "X-Preview-Replica": still.replica, "X-Preview-Cached": "1" if still.cached else "0"}
        if _wants_json(request):
            return {"scene": scene, "settings": json.loads(still.settings_json),
                    "settings_hash": still.settings_hash, "size": still.size, "frame": still.frame,
                    "image": "data:image/png;base64," + base64.b64encode(still.png).decode(),
                    "replica": still.replica, "cached": still.cached}
        return Response(still.png, media_type="image/png", headers=headers)

    return router


def _preview_error(exc: grpc.aio.AioRpcError) -> ApiError:
    details = exc.details() or ""
    field, _, message = details.partition(": ")
    code = exc.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ApiError(400, "invalid_argument", details, field if message else None)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry = dict(exc.trailing_metadata() or ()).get("retry-after", "1")
        return ApiError(429, "resource_exhausted", details, "preview", {"Retry-After": str(retry)})
    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        return ApiError(500, "internal", "the renderer failed to draw this preview; it has been logged", None)
    return ApiError(503, "unavailable", "no renderer is answering previews right now; try again in a moment",
                    "preview", {"Retry-After": "2"})
