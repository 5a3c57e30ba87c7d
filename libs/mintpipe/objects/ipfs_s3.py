"""The local content-addressed IPFS store on an S3-compatible object store (`MINTPIPE_ARTIFACTS_URL=s3://...`).

The same contract as mintpipe.objects.ipfs.LocalIpfsStore (the `local` pin backend writes it, status serves
`/ipfs/{cid}` from it), so any status replica serves what any pinner pinned, on any host. One object per CID:

    <prefix>ipfs/<cid>    the bytes, Content-Type as pinned, metadata `name` (URL-quoted) and `pinned-at`

A PUT (or completed multipart upload) is atomic, so the object's presence IS the pin: no sidecar is needed.
Two pinners adding the same CID at once both write the same bytes under the same key: harmless (the pin
service's upload claims make it rare); the later one only rewrites `pinned-at`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from urllib.parse import quote, unquote

import botocore.exceptions

from mintpipe.core.cid import canonical_cid, cid_of_bytes, cid_of_file
from mintpipe.objects.ipfs import DEFAULT_CONTENT_TYPE, PinListing, PinResult, StoredObject
from mintpipe.objects.s3 import COPIES, READ_CHUNK, TRANSFER, Bucket, bucket_healthy, is_missing, list_keys

IPFS = "ipfs/"


class S3IpfsStore(PinListing):
    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def describe(self) -> str:
        return f"s3://{self.bucket.name}/{self.bucket.prefix}{IPFS}"

    def healthy(self) -> bool:
        return bucket_healthy(self.bucket)

    def _key(self, cid: str) -> str:
        return self.bucket.key(IPFS + cid)

    def has(self, cid: str) -> bool:
        return self.get(cid) is not None

    def get(self, cid: str) -> StoredObject | None:
        """The pinned object under any spelling of `cid`, or None: one HEAD request. Its `path` is None: read it
        with `stream`."""
        try:
            cid = canonical_cid(cid)
        except ValueError:
            return None
        try:
            head = self.bucket.client.head_object(Bucket=self.bucket.name, Key=self._key(cid))
        except botocore.exceptions.ClientError as exc:
            if is_missing(exc):
                return None
            raise
        meta = head.get("Metadata", {})
        try:
            pinned_at = float(meta.get("pinned-at", "0"))
        except ValueError:
            pinned_at = 0.0
        return StoredObject(cid, None, head.get("ContentType") or DEFAULT_CONTENT_TYPE, head["ContentLength"],
                            unquote(meta.get("name", "")), pinned_at)

    def stream(self, cid: str, first: int | None = None, last: int | None = None) -> Iterator[bytes]:
        """The object's bytes (or bytes first..last, inclusive) in 1 MiB chunks: never the whole object in memory."""
        extra = {"Range": f"bytes={first}-{last}"} if first is not None else {}
        body = self.bucket.client.get_object(Bucket=self.bucket.name, Key=self._key(canonical_cid(cid)),
                                             **extra)["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    def read(self, cid: str) -> bytes:
        return b"".join(self.stream(cid))

    def _pinned_cids(self) -> Iterator[str]:
        for key, _size, _modified in list_keys(self.bucket, IPFS):
            yield key[len(IPFS):]

    def _extra(self, content_type: str, name: str) -> dict:
        return {"ContentType": content_type or DEFAULT_CONTENT_TYPE,
                "Metadata": {"name": quote(name, safe=""), "pinned-at": f"{time.time():.3f}"}}

    def add_bytes(self, data: bytes, content_type: str, name: str = "") -> PinResult:
        cid = cid_of_bytes(data)
        if self.has(cid):
            return PinResult(cid, len(data), True)
        self.bucket.client.put_object(Bucket=self.bucket.name, Key=self._key(cid), Body=data,
                                      **self._extra(content_type, name))
        return PinResult(cid, len(data), False)

    def add_file(self, path: str | os.PathLike[str], content_type: str, name: str = "",
                 cid: str | None = None) -> PinResult:
        """Uploads the file under its CID (streamed from disk in 5 MiB parts); nothing is sent when that CID is
        stored already. `cid`, when the caller just computed it, saves a read and hash of the file: the pinner's
        files are its own private copies (see mintpipe.objects.artifacts_s3), which nothing else changes meanwhile."""
        cid = cid or cid_of_file(path)
        size = os.path.getsize(path)
        if self.has(cid):
            return PinResult(cid, size, True)
        source = COPIES.get(os.fspath(path))
        if source is not None and source[0] == self.bucket.name and self._copy(source, cid, content_type, name):
            return PinResult(cid, size, False)
        self.bucket.client.upload_file(os.fspath(path), self.bucket.name, self._key(cid), Config=TRANSFER,
                                       ExtraArgs=self._extra(content_type, name))
        return PinResult(cid, size, False)

    def _copy(self, source: tuple[str, str, str], cid: str, content_type: str, name: str) -> bool:
        """Server-side copy of the very object the local file was downloaded from (its ETag unchanged); False when
        the server refuses (changed since, or no CopyObject): the caller uploads the verified file instead."""
        bucket, key, etag = source
        try:
            self.bucket.client.copy_object(Bucket=self.bucket.name, Key=self._key(cid),
                                           CopySource={"Bucket": bucket, "Key": key}, CopySourceIfMatch=etag,
                                           MetadataDirective="REPLACE", **self._extra(content_type, name))
        except botocore.exceptions.ClientError:
            return False
        return True

