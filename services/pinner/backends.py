"""Pinning backends: the local content-addressed store (embedded default) and Pinata.

Both answer the same two questions — is this CID pinned there already, and pin this file — so the pin
service above them can guarantee "never the same content twice" and check every returned CID against ours.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Protocol

import httpx

from mintpipe.messaging.consumer import ParkError, PermanentError, TransientError
from mintpipe.objects.ipfs import LocalIpfsStore


class BackendAuthError(ParkError):
    """The backend refused our credentials: nothing will work until an operator fixes them."""


class BackendRateLimited(TransientError):
    """The backend answered 429. Its `retry_after` (when it sent one) is meant for every replica, not only
    for the request that got it: the pin service records it in the shared ledger."""


class PinBackend(Protocol):
    name: str

    async def has(self, cid: str) -> bool: ...

    async def pin_file(self, path: Path, content_type: str, name: str, keyvalues: dict[str, str],
                       cid: str | None = None) -> str:
        """Uploads the file; returns the CID the backend gives it. `cid`, the caller's own CID of the file, is a
        hint a backend may use to skip hashing; the caller compares the answer with it either way."""
        ...

    async def aclose(self) -> None: ...


class LocalBackend:
    name = "local"

    def __init__(self, store: LocalIpfsStore) -> None:
        self.store = store

    async def has(self, cid: str) -> bool:
        return await asyncio.to_thread(self.store.has, cid)  # a HEAD request on the object store

    async def pin_file(self, path: Path, content_type: str, name: str, keyvalues: dict[str, str],
                       cid: str | None = None) -> str:
        return (await asyncio.to_thread(self.store.add_file, path, content_type, name, cid)).cid

    async def aclose(self) -> None:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class PinataBackend:
    """Pinata over HTTPS with a JWT: the v3 files API (network=public) or the legacy pinning API.

    429 and 5xx and timeouts are transient (Retry-After honoured; a 429 raises BackendRateLimited so the
    caller can hold every replica off); 401/403 mean the JWT is wrong.
    """

    def __init__(self, jwt: str, api_url: str, uploads_url: str, api: str = "v3", timeout: float = 60.0) -> None:
        self.name = f"pinata-{api}"
        self.api = api
        self._api = httpx.AsyncClient(base_url=api_url, timeout=timeout,
                                      headers={"Authorization": f"Bearer {jwt}"})
        self._uploads = httpx.AsyncClient(base_url=uploads_url, timeout=timeout,
                                          headers={"Authorization": f"Bearer {jwt}"})

    async def _call(self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"pinata: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"pinata: cannot connect ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise BackendAuthError(f"pinata refused the JWT ({response.status_code}); set PINNER_PINATA_JWT to a "
                                   "valid key with pinning scopes, then replay the dead-lettered job")
        if response.status_code == 429:
            raise BackendRateLimited("pinata: rate limited (429)", retry_after=_retry_after(response))
        if response.status_code >= 500:
            raise TransientError(f"pinata: server error {response.status_code}", retry_after=_retry_after(response))
        if response.status_code >= 400:
            raise PermanentError(f"pinata refused the request ({response.status_code}): {response.text[:300]}")
        return response.json()

    async def has(self, cid: str) -> bool:
        if self.api == "v3":
            body = await self._call(self._api, "GET", "/v3/files/public", params={"cid": cid, "limit": 1})
            return any(f.get("cid") == cid for f in body.get("data", {}).get("files", []))
        body = await self._call(self._api, "GET", "/data/pinList", params={"hashContains": cid, "status": "pinned"})
        return any(r.get("ipfs_pin_hash") == cid for r in body.get("rows", []))

    async def pin_file(self, path: Path, content_type: str, name: str, keyvalues: dict[str, str],
                       cid: str | None = None) -> str:
        data = await asyncio.to_thread(path.read_bytes)  # Pinata hashes what it receives: `cid` is not used
        files = {"file": (name, data, content_type)}
        if self.api == "v3":
            form = {"network": "public", "name": name, "keyvalues": json.dumps(keyvalues)}
            body = await self._call(self._uploads, "POST", "/v3/files", files=files, data=form)
            return str(body["data"]["cid"])
        form = {"pinataMetadata": json.dumps({"name": name, "keyvalues": keyvalues}),
                "pinataOptions": json.dumps({"cidVersion": 1})}
        body = await self._call(self._api, "POST", "/pinning/pinFileToIPFS", files=files, data=form)
        return str(body["IpfsHash"])

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._uploads.aclose()
