"""The artifact store's S3 engine: the same contract as the local folder, on an S3-compatible object store.

Layout under the URL's prefix:
    artifacts/<job_id>/<file>    rendered files (metadata `sha256`) and `manifest.json`, written last
    cancelled/<job_id>           an operator's cancel marker
(the local IPFS store's objects live beside them under `ipfs/`, see mintpipe.objects.ipfs_s3).

A PUT (or a completed multipart upload) is all or nothing and replaces the object atomically, so the local
engine's temp-file-and-rename dance has no counterpart here: a reader sees the old object or the whole new one.
Local files exist only in this process's own scratch folder (`<data_dir>/scratch`): the renderer's output before
its upload, the pinner's downloaded copies while it pins them. Nothing crosses services through a path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import botocore.exceptions

from mintpipe.objects.artifacts import CANCELLED, MANIFEST, ArtifactCorrupt, ArtifactMissing, check_job_id
from mintpipe.objects.s3 import COPIES, READ_CHUNK, TRANSFER, Bucket, bucket_healthy, delete_keys, is_missing, list_keys

_KEY = re.compile(r"^[0-9a-f]{32}/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
ARTIFACTS = "artifacts/"
STALE_SCRATCH_SECONDS = 3600  # a working folder older than this belongs to a process that died


class S3ArtifactStore:
    def __init__(self, bucket: Bucket, scratch: Path) -> None:
        self.bucket = bucket
        self.scratch = Path(scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._sweep_scratch()

    def describe(self) -> str:
        return f"s3://{self.bucket.name}/{self.bucket.prefix}"

    def healthy(self) -> bool:
        return bucket_healthy(self.bucket)

    def _key(self, key: str) -> str:
        if not _KEY.match(key):
            raise ValueError(f"artifact key escapes the store: {key!r}")
        return self.bucket.key(ARTIFACTS + key)

    def key_for(self, job_id: str, name: str) -> str:
        return f"{check_job_id(job_id)}/{name}"

    # --- the renderer's side ------------------------------------------------------------------------

    @contextmanager
    def workspace(self, job_id: str) -> Iterator[Path]:
        """A fresh local folder of this process's own, removed afterwards."""
        folder = Path(tempfile.mkdtemp(prefix=f"{check_job_id(job_id)}.", dir=self.scratch))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def publish(self, job_id: str, files: list[tuple[Path, str, str]]) -> None:
        """Uploads (path, content type, sha256) files as `<job_id>/<name>`, streamed from disk in 5 MiB parts."""
        for path, content_type, sha256 in files:
            self.bucket.client.upload_file(
                str(path), self.bucket.name, self._key(self.key_for(job_id, path.name)), Config=TRANSFER,
                ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": sha256}})

    def write_manifest(self, job_id: str, manifest: dict[str, Any]) -> None:
        """Written last: its presence means every artifact of the job is complete."""
        self.bucket.client.put_object(Bucket=self.bucket.name, Key=self._key(self.key_for(job_id, MANIFEST)),
                                      Body=json.dumps(manifest, sort_keys=True).encode(),
                                      ContentType="application/json")

    def read_manifest(self, job_id: str) -> dict[str, Any] | None:
        try:
            body = self.bucket.client.get_object(Bucket=self.bucket.name,
                                                 Key=self._key(self.key_for(job_id, MANIFEST)))["Body"].read()
            return json.loads(body)
        except botocore.exceptions.ClientError as exc:
            if is_missing(exc):
                return None
            raise
        except json.JSONDecodeError:
            return None

    def check_manifest(self, manifest: dict[str, Any]) -> str | None:
        """What differs between a manifest and the objects it lists: one HEAD each (size and the sha256 recorded
        at upload). An object is never half written here, so the byte-for-byte check is left to the pinner,
        which hashes what it downloads anyway, rather than downloading every file twice."""
        try:
            listed = manifest["artifacts"]
            for artifact in listed:
                try:
                    head = self.bucket.client.head_object(Bucket=self.bucket.name, Key=self._key(artifact["key"]))
                except botocore.exceptions.ClientError as exc:
                    if is_missing(exc):
                        return f"{artifact['key']} is missing"
                    raise
                if (head["ContentLength"] != artifact["size"]
                        or head.get("Metadata", {}).get("sha256") != artifact["sha256"]):
                    return f"{artifact['key']} does not match its size and sha256"
        except (KeyError, TypeError, ValueError) as exc:
            return f"unreadable manifest: {exc!r}"
        return None if listed else "the manifest lists no files"

    # --- the pinner's side --------------------------------------------------------------------------

    @contextmanager
    def verified_copy(self, key: str, sha256: str) -> Iterator[Path]:
        """A local copy of the object, streamed in 1 MiB chunks and hashed on the way; removed afterwards."""
        object_key = self._key(key)
        folder = Path(tempfile.mkdtemp(prefix="pin.", dir=self.scratch))
        try:
            path = folder / key.rsplit("/", 1)[1]
            try:
                got = self.bucket.client.get_object(Bucket=self.bucket.name, Key=object_key)
                body = got["Body"]
            except botocore.exceptions.ClientError as exc:
                if is_missing(exc):
                    raise ArtifactMissing(f"{key} is missing from the artifact store") from None
                raise
            digest = hashlib.sha256()
            with open(path, "wb") as fh:
                for chunk in body.iter_chunks(READ_CHUNK):
                    digest.update(chunk)
                    fh.write(chunk)
            if digest.hexdigest() != sha256:
                raise ArtifactCorrupt(f"{key} does not match its sha256 (integrity)")
            if got.get("ETag"):
                COPIES[str(path)] = (self.bucket.name, object_key, got["ETag"])
            yield path
        finally:
            COPIES.pop(str(folder / key.rsplit("/", 1)[-1]), None)
            shutil.rmtree(folder, ignore_errors=True)

    def has_job(self, job_id: str) -> bool:
        found = self.bucket.client.list_objects_v2(
            Bucket=self.bucket.name, Prefix=self.bucket.key(f"{ARTIFACTS}{check_job_id(job_id)}/"), MaxKeys=1)
        return bool(found.get("KeyCount"))

    # --- cancels: markers every renderer and pinner looks for, whichever host it runs on ------------------

    def _marker(self, job_id: str) -> str:
        return self.bucket.key(f"{CANCELLED}/{check_job_id(job_id)}")

    def cancel(self, job_id: str) -> None:
        self.bucket.client.put_object(Bucket=self.bucket.name, Key=self._marker(job_id),
                                      Body=b"cancelled by an operator")

    def is_cancelled(self, job_id: str) -> bool:
        try:
            self.bucket.client.head_object(Bucket=self.bucket.name, Key=self._marker(job_id))
        except botocore.exceptions.ClientError as exc:
            if is_missing(exc):
                return False
            raise
        return True

    def cancel_markers(self) -> Iterator[tuple[str, float]]:
        for key, _size, modified in list_keys(self.bucket, f"{CANCELLED}/"):
            job_id = key.rsplit("/", 1)[1]
            if re.fullmatch(r"[0-9a-f]{32}", job_id):
                yield job_id, modified

    def remove_cancel_marker(self, job_id: str) -> None:
        self.bucket.client.delete_object(Bucket=self.bucket.name, Key=self._marker(job_id))

    # --- clean-up (status.workers.artifact_sweeper decides what may go) -----------------------------------

    def jobs(self) -> Iterator[tuple[str, float]]:
        """(job id, newest object's last-modified) of every job with objects in the store: one listing."""
        newest: dict[str, float] = {}
        for key, _size, modified in list_keys(self.bucket, ARTIFACTS):
            job_id = key[len(ARTIFACTS):].split("/", 1)[0]
            if re.fullmatch(r"[0-9a-f]{32}", job_id):
                newest[job_id] = max(newest.get(job_id, 0.0), modified)
        yield from newest.items()

    def remove_job(self, job_id: str) -> int:
        found = list(list_keys(self.bucket, f"{ARTIFACTS}{check_job_id(job_id)}/"))
        delete_keys(self.bucket, [key for key, _size, _modified in found])
        return sum(size for _key, size, _modified in found)

    def abort_stale_uploads(self, before: float) -> int:
        """Aborts multipart uploads under the prefix started before `before` (epoch seconds): a renderer killed
        mid-upload leaves its parts stored, and billed, but listed by no ListObjects. The count aborted."""
        aborted = 0
        pages = self.bucket.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket.name, Prefix=self.bucket.key(ARTIFACTS))
        for page in pages:
            for upload in page.get("Uploads", ()):
                if upload["Initiated"].timestamp() < before:
                    self.bucket.client.abort_multipart_upload(Bucket=self.bucket.name, Key=upload["Key"],
                                                              UploadId=upload["UploadId"])
                    aborted += 1
        return aborted

    def _sweep_scratch(self) -> None:
        # Working folders of a process that died mid-job. A young one may be another live replica's
        # (replicas on one host may share a data folder): keep it.
        cutoff = time.time() - STALE_SCRATCH_SECONDS
        for entry in os.scandir(self.scratch):
            try:
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry.path, ignore_errors=True)
            except FileNotFoundError:
                pass
