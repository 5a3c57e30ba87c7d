"""The local content-addressed store: the embedded default pinning backend, and what `/ipfs/{cid}` serves.

A folder on disk. Objects are kept whole (not as IPFS blocks: simple and fast to serve), named by their CIDv1
(computed as IPFS does, see mintpipe.core.cid), each with a small JSON sidecar holding its content type:

    root/.incoming/<random>        files being written (same filesystem, so moving them in is atomic)
    root/<last 2 chars>/<cid>       the object's bytes, never changed once there
    root/<last 2 chars>/<cid>.json  {"content_type", "size", "name", "pinned_at"}: its presence IS the pin

Adding is crash-safe and safe from several processes at once (several pinner replicas) without a lock:
bytes go to a temp file that is fsynced, then hard-linked to the object's name; the sidecar likewise, last.
`os.link` never replaces an existing name, so exactly one concurrent adder creates the sidecar and gets
`already_pinned=False`, the others `True`. A crash leaves at worst a temp file (ignored, swept an hour later)
or an object without its sidecar (not pinned; the next add of the same bytes completes it). The store needs a
filesystem with hard links, as every local Linux filesystem and docker volume has.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mintpipe.core.cid import CHUNK_SIZE, CidBuilder, canonical_cid, cid_of_bytes, cid_of_file

DEFAULT_CONTENT_TYPE = "application/octet-stream"
STALE_TEMP_SECONDS = 3600  # an add that takes longer than this is long dead
_SIDECAR = ".json"


@dataclass(frozen=True)
class PinResult:
    cid: str
    size: int
    already_pinned: bool


@dataclass(frozen=True)
class StoredObject:
    cid: str  # CIDv1 base32, whatever spelling it was asked for with
    path: Path | None  # None in the object store (mintpipe.objects.ipfs_s3): read it with the store's `stream`
    content_type: str
    size: int
    name: str
    pinned_at: float = 0.0  # unix time the first add committed it


def _fsync_dir(path: Path) -> None:
    # A rename or link is durable only once its directory is synced.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PinListing:
    """What both engines of the IPFS store (the folder here, mintpipe.objects.ipfs_s3) list the same way, from their own
    `get` and `_pinned_cids`."""

    def get(self, cid: str) -> StoredObject | None:
        raise NotImplementedError

    def _pinned_cids(self) -> Iterator[str]:
        raise NotImplementedError

    def ledger(self) -> list[StoredObject]:
        """Everything pinned here, oldest first. Reads every object's metadata: for operators and tests only."""
        found = (self.get(cid) for cid in self._pinned_cids())
        return sorted((obj for obj in found if obj is not None), key=lambda obj: (obj.pinned_at, obj.cid))

    def pins_count(self) -> int:
        return sum(1 for _ in self._pinned_cids())


class LocalIpfsStore(PinListing):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._incoming = self.root / ".incoming"
        self._incoming.mkdir(parents=True, exist_ok=True)
        self._sweep_stale_temp_files()

    def describe(self) -> str:
        return f"folder {self.root}"

    def healthy(self) -> bool:
        return self.root.is_dir()

    # --- reading: cheap, the HTTP bridge calls these per request ---------------------------------------

    def _blob(self, cid: str) -> Path:
        # Fan out by the CID's last characters (uniformly spread, unlike its fixed `bafk`/`bafy` start).
        return self.root / cid[-2:] / cid

    def has(self, cid: str) -> bool:
        try:
            blob = self._blob(canonical_cid(cid))
        except ValueError:
            return False
        return blob.with_name(blob.name + _SIDECAR).is_file() and blob.is_file()

    def get(self, cid: str) -> StoredObject | None:
        """The pinned object under any spelling of `cid` (v0, v1, any multibase), or None: one stat and one
        small read."""
        try:
            cid = canonical_cid(cid)
        except ValueError:
            return None
        blob = self._blob(cid)
        try:
            size = blob.stat().st_size
            meta = json.loads(blob.with_name(blob.name + _SIDECAR).read_bytes())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return StoredObject(cid, blob, meta.get("content_type") or DEFAULT_CONTENT_TYPE, size,
                            meta.get("name", ""), meta.get("pinned_at", 0.0))

    def _pinned_cids(self) -> Iterator[str]:
        for shard in os.scandir(self.root):
            if shard.name.startswith(".") or not shard.is_dir():
                continue
            for entry in os.scandir(shard.path):
                if entry.name.endswith(_SIDECAR) and not entry.name.startswith("."):
                    yield entry.name.removesuffix(_SIDECAR)

    # --- adding --------------------------------------------------------------------------------------

    def add_bytes(self, data: bytes, content_type: str, name: str = "") -> PinResult:
        cid = cid_of_bytes(data)
        if self.has(cid):
            return PinResult(cid, len(data), True)
        tmp = self._temp_file()
        try:
            with open(tmp, "wb") as dst:
                dst.write(data)
                dst.flush()
                os.fsync(dst.fileno())
            return self._commit(cid, tmp, len(data), content_type, name)
        finally:
            tmp.unlink(missing_ok=True)

    def add_file(self, path: str | os.PathLike[str], content_type: str, name: str = "",
                 cid: str | None = None) -> PinResult:
        """Copies the file in under its CID; nothing is copied when that CID is pinned already. A caller that has
        just computed the file's CID passes it as `cid`, which saves one read and hash of the file (the pinner's:
        15-28 ms a default job); the copy is hashed either way, and a mismatch stores nothing."""
        cid = cid or cid_of_file(path)
        if self.has(cid):
            return PinResult(cid, os.path.getsize(path), True)
        tmp = self._temp_file()
        try:
            # Hash what is actually copied: a file changed between the two reads must not be stored under
            # a CID that is not its own.
            check = CidBuilder()
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(4 * CHUNK_SIZE):
                    check.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if check.finish() != cid:
                raise ValueError(f"{os.fspath(path)} changed while it was being added; nothing was stored")
            return self._commit(cid, tmp, check.size, content_type, name)
        finally:
            tmp.unlink(missing_ok=True)

    def _temp_file(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self._incoming, prefix="add-")
        os.close(fd)
        return Path(name)

    def _commit(self, cid: str, tmp: Path, size: int, content_type: str, name: str) -> PinResult:
        """Moves a complete, fsynced temp file in as `cid` and writes the sidecar; the caller removes `tmp`."""
        blob = self._blob(cid)
        blob.parent.mkdir(exist_ok=True)
        try:
            os.link(tmp, blob)
        except FileExistsError:
            pass  # another adder (or one that crashed before its sidecar) put the same bytes there already
        meta = json.dumps({"content_type": content_type or DEFAULT_CONTENT_TYPE, "size": size, "name": name,
                           "pinned_at": time.time()}).encode()
        meta_tmp = self._temp_file()
        try:
            with open(meta_tmp, "wb") as fh:
                fh.write(meta)
                fh.flush()
                os.fsync(fh.fileno())
            _fsync_dir(blob.parent)  # the object's name is durable before any sidecar points at it
            try:
                os.link(meta_tmp, blob.with_name(blob.name + _SIDECAR))
            except FileExistsError:
                return PinResult(cid, size, True)  # a concurrent adder won
            _fsync_dir(blob.parent)
            return PinResult(cid, size, False)
        finally:
            meta_tmp.unlink(missing_ok=True)

    def _sweep_stale_temp_files(self) -> None:
        # Leftovers of adds that crashed. A young one may belong to an add in progress elsewhere: keep it.
        cutoff = time.time() - STALE_TEMP_SECONDS
        for entry in os.scandir(self._incoming):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass  # another process swept it first



def open_ipfs(url: str | None, data_dir: str | os.PathLike[str], check: bool = True):
    """The local IPFS store `MINTPIPE_ARTIFACTS_URL` implies: unset, this folder store at `<data_dir>/ipfs`;
    `s3://bucket/prefix`, objects under the prefix's `ipfs/` (mintpipe.objects.ipfs_s3)."""
    if not url:
        return LocalIpfsStore(Path(data_dir) / "ipfs")
    from mintpipe.objects.ipfs_s3 import S3IpfsStore  # boto3 is imported only by deployments that use it
    from mintpipe.objects.s3 import open_bucket

    return S3IpfsStore(open_bucket(url, check=check))
