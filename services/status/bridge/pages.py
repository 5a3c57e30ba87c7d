"""The mint page's built files (web/dist/page, made by web/build.mjs) at `/` and `/jobs/{id}`.

The bridge only serves what the build made. The assets' URLs in index.html get a content hash (`?v=`), so a
browser may keep them a year (immutable) and a new build is fetched at once; index.html itself is revalidated
every time (ETag). Files are read and gzipped once at start: the page is a few tens of kB.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response

from mintpipe.runtime.log import get_logger
from status.errors import ApiError

log = get_logger("status.pages")

DEFAULT_WEB_DIR = Path(__file__).resolve().parents[3] / "web" / "dist"  # the checkout's (services/status/bridge/)
PAGE_PREFIX = "/page/"
# Everything the page needs comes from this origin; wallets talk to it through their injected provider.
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
       "script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


def _asset(body: bytes, name: str) -> Asset:
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "image/svg+xml"):
        content_type += "; charset=utf-8"
    return Asset(body, gzip.compress(body, 9, mtime=0), content_type,
                 '"' + hashlib.sha256(body).hexdigest()[:20] + '"')


def load_page(folder: Path) -> tuple[Asset, dict[str, Asset]] | None:
    """index.html (its asset URLs versioned) and the other files, or None when the page was not built."""
    index_path = folder / "index.html"
    if not index_path.is_file():
        return None
    assets = {p.name: _asset(p.read_bytes(), p.name) for p in folder.iterdir()
              if p.is_file() and p.name != "index.html"}
    html = index_path.read_text()

    def versioned(match: re.Match[str]) -> str:
        name = match.group(2)
        asset = assets.get(name)
        return match.group(0) if asset is None else f'{match.group(1)}{PAGE_PREFIX}{name}?v={asset.etag[1:9]}"'

    html = re.sub(r'((?:src|href)=")' + re.escape(PAGE_PREFIX) + r'([\w.-]+)"', versioned, html)
    return _asset(html.encode(), "index.html"), assets


def _send(request: Request, asset: Asset, cache: str) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": cache, "Vary": "Accept-Encoding", **SECURITY_HEADERS}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(asset.gzipped, media_type=asset.content_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(asset.body, media_type=asset.content_type, headers=headers)


def create_page_router(web_dir: Path | None = None) -> APIRouter:
    folder = (web_dir or DEFAULT_WEB_DIR) / "page"
    loaded = load_page(folder)
    if loaded is None:
        log.error("the mint page is not built; / answers 503 until it is (node web/build.mjs)", folder=str(folder))
    router = APIRouter(include_in_schema=False)

    def page(request: Request) -> Response:
        if loaded is None:
            raise ApiError(503, "unavailable", "the mint page is not built on this server (node web/build.mjs)")
        return _send(request, loaded[0], "no-cache")

    @router.get("/")
    async def home(request: Request) -> Response:
        return page(request)

    @router.get("/jobs/{job_id}")
    async def job_page(job_id: str, request: Request) -> Response:
        # The page reads the job itself (GET /v1/jobs/{id}) and says so when the id is unknown.
        return page(request)

    @router.get(PAGE_PREFIX + "{name}")
    async def page_asset(name: str, request: Request) -> Response:
        asset = loaded[1].get(name) if loaded else None
        if asset is None:
            raise ApiError(404, "not_found", f"no page file {name[:80]!r}", "name")
        versioned = request.query_params.get("v") == asset.etag[1:9]
        return _send(request, asset, "public, max-age=31536000, immutable" if versioned else "no-cache")

    return router
