"""`/ipfs/{cid}` for objects in the S3 object store (MINTPIPE_ARTIFACTS_URL=s3://...): streamed through in 1 MiB
chunks, with single byte ranges (206) as the folder store's FileResponse has them: browsers ask for ranges to
play a video (mobile Safari will not play an MP4 `animation_url` from a server without them) and to seek."""

from __future__ import annotations

import re

from fastapi.responses import Response, StreamingResponse

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) inclusive for one satisfiable range; None to send the whole object (no header, several
    ranges, or a form we do not read); "unsatisfiable" for a range past the end."""
    if not header:
        return None
    found = _RANGE.match(header.strip())
    if found is None:
        return None
    first, last = found.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        return (max(size - suffix, 0), size - 1) if suffix and size else "unsatisfiable"
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


def object_response(store, stored, headers: dict[str, str], range_header: str | None) -> Response:
    headers = {**headers, "Accept-Ranges": "bytes"}
    wanted = byte_range(range_header, stored.size)
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{stored.size}"})
    if wanted is None:
        return StreamingResponse(store.stream(stored.cid), media_type=stored.content_type,
                                 headers={**headers, "Content-Length": str(stored.size)})
    first, last = wanted
    return StreamingResponse(store.stream(stored.cid, first, last), status_code=206, media_type=stored.content_type,
                             headers={**headers, "Content-Length": str(last - first + 1),
                                      "Content-Range": f"bytes {first}-{last}/{stored.size}"})
