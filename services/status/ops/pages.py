"""The operators' dashboard's built files (web/dist/admin, made by web/build.mjs) at /admin, and the login
form's plain-HTML path (POST /admin/login) for a browser without JavaScript.

The page holds no secret: it asks GET /v1/admin/session who is signed in and for the CSRF token, and every
number it shows comes from the JSON API (status.ops.views). Files are read once at start (a few tens of kB).
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from mintpipe.runtime.log import get_logger
from status.errors import ApiError
from status.ops.auth import COOKIE, SESSION_SECONDS, OpsAuth

log = get_logger("status.admin_pages")

DEFAULT_WEB_DIR = Path(__file__).resolve().parents[3] / "web" / "dist"  # the checkout's (services/status/ops/)
# Everything comes from this origin; nothing inline, so an injected script has nowhere to run.
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; script-src 'self'; "
       "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}


def _load(folder: Path) -> dict[str, tuple[bytes, str, str]]:
    files: dict[str, tuple[bytes, str, str]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file():
                body = path.read_bytes()
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                files[path.name] = (body, kind, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
    return files


def create_admin_pages(auth: OpsAuth, web_dir: Path | None = None, secure_cookie: bool = False) -> APIRouter:
    folder = (web_dir or DEFAULT_WEB_DIR) / "admin"
    files = _load(folder)
    if "index.html" not in files:
        log.error("the dashboard is not built; /admin answers 503 until it is (node web/build.mjs)",
                  folder=str(folder))
    router = APIRouter(include_in_schema=False)

    def send(request: Request, name: str) -> Response:
        if name not in files:
            if name == "index.html":
                raise ApiError(503, "unavailable", "the dashboard is not built on this server (node web/build.mjs)")
            raise ApiError(404, "not_found", f"no dashboard file {name[:80]!r}", "name")
        body, kind, etag = files[name]
        headers = {"ETag": etag, "Cache-Control": "no-cache", **HEADERS}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=kind, headers=headers)

    @router.get("/admin")
    async def dashboard(request: Request) -> Response:
        return send(request, "index.html")

    @router.post("/admin/login")
    async def login_form(request: Request, token: Annotated[str, Form(max_length=500)] = "") -> Response:
        """The form without JavaScript: a session cookie and back to the dashboard, or back with an error."""
        try:
            role = auth.role_of(request, token)
        except ApiError as exc:
            return RedirectResponse(f"/admin?login={'locked' if exc.status == 429 else 'wrong'}", 303)
        reply = RedirectResponse("/admin", 303)
        reply.set_cookie(COOKIE, auth.new_session(role), max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                         secure=secure_cookie, path="/")
        return reply

    @router.get("/admin/{name}")
    async def asset(name: str, request: Request) -> Response:
        return send(request, name)

    return router
