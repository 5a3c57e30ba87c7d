"""The artifact store: where rendered files wait for the pin stage (claim check).

Big bytes never travel through the broker; messages carry keys into this store. Keys are `<job_id>/<file>`.
Two engines with one interface (`Artifacts`): a local folder (the default: one host, or a volume shared by
renderer and pinner) and an S3-compatible object store (`MINTPIPE_ARTIFACTS_URL=s3://bucket/prefix`, see
mintpipe.objects.artifacts_s3), where nothing crosses services through a local path. `open_artifacts` picks one.

How the stages use it, on either engine: the renderer writes a job's files into `workspace(job_id)` (a local
folder), then `publish`es them and writes the manifest last; the pinner reads each file through
`verified_copy(key, sha256)` (a local file whose bytes match the manifest's sha256) and writes its metadata into
a `workspace` too; operators' cancels are markers in the store; the status service's sweeper lists and removes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MANIFEST = "manifest.json"
CANCELLED = "cancelled"  # a folder of markers named by job id; never a job id itself


class ArtifactMissing(Exception):
    """A listed artifact is not in the store (swept, or never written)."""


class ArtifactCorrupt(Exception):
    """A stored artifact's bytes do not match the sha256 its manifest lists."""


class Artifacts(Protocol):
    """What every stage needs from an artifact store (sync: the services call it through asyncio.to_thread)."""

    def describe(self) -> str: ...
    def healthy(self) -> bool: ...
    def key_for(self, job_id: str, name: str) -> str: ...
    def workspace(self, job_id: str) -> AbstractContextManager[Path]: ...
    def publish(self, job_id: str, files: list[tuple[Path, str, str]]) -> None: ...
    def verified_copy(self, key: str, sha256: str) -> AbstractContextManager[Path]: ...
    def has_job(self, job_id: str) -> bool: ...
    def write_manifest(self, job_id: str, manifest: dict[str, Any]) -> None: ...
    def read_manifest(self, job_id: str) -> dict[str, Any] | None: ...
    def check_manifest(self, manifest: dict[str, Any]) -> str | None: ...
    def cancel(self, job_id: str) -> None: ...
    def is_cancelled(self, job_id: str) -> bool: ...
    def jobs(self) -> Iterator[tuple[str, float]]: ...
    def remove_job(self, job_id: str) -> int: ...
    def cancel_markers(self) -> Iterator[tuple[str, float]]: ...
    def remove_cancel_marker(self, job_id: str) -> None: ...
    def abort_stale_uploads(self, before: float) -> int: ...


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id


class ArtifactStore:
    """The local engine: a folder, `<root>/<job_id>/<file>` and `<root>/cancelled/<job_id>`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return f"folder {self.root}"

    def healthy(self) -> bool:
        return self.root.is_dir()

    def key_for(self, job_id: str, name: str) -> str:
        return f"{check_job_id(job_id)}/{name}"

    @contextmanager
    def workspace(self, job_id: str) -> Iterator[Path]:
        """The job's own folder: files written there are in the store already."""
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder

    def publish(self, job_id: str, files: list[tuple[Path, str, str]]) -> None:
        """Nothing to do: `workspace` is the store itself."""

    @contextmanager
    def verified_copy(self, key: str, sha256: str) -> Iterator[Path]:
        """The stored file itself, once its bytes are checked against `sha256`."""
        path = self.path_of(key)
        if not path.is_file():
            raise ArtifactMissing(f"{key} is missing from the artifact store")
        if sha256_file(path) != sha256:
            raise ArtifactCorrupt(f"{key} does not match its sha256 (integrity)")
        yield path

    def has_job(self, job_id: str) -> bool:
        return self.job_dir(job_id).exists()

    def abort_stale_uploads(self, before: float) -> int:
        """Nothing to do: a crashed writer's temp files are inside its job's folder and go with it."""
        return 0

    def job_dir(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def key_of(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def path_of(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"artifact key escapes the store: {key!r}")
        return path

    def write_manifest(self, job_id: str, manifest: dict[str, Any]) -> None:
        """Written last and atomically: its presence means every artifact of the job is complete."""
        write_atomic(self.job_dir(job_id) / MANIFEST, json.dumps(manifest, sort_keys=True).encode())

    def read_manifest(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.job_dir(job_id) / MANIFEST).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def check_manifest(self, manifest: dict[str, Any]) -> str | None:
        """What differs between a manifest and the files it lists (None when every file is there with the listed
        size and sha256)."""
        try:
            listed = manifest["artifacts"]
            for artifact in listed:
                path = self.path_of(artifact["key"])
                if not path.is_file():
                    return f"{artifact['key']} is missing"
                if path.stat().st_size != artifact["size"] or sha256_file(path) != artifact["sha256"]:
                    return f"{artifact['key']} does not match its size and sha256"
        except (KeyError, TypeError, ValueError) as exc:
            return f"unreadable manifest: {exc!r}"
        return None if listed else "the manifest lists no files"

    # Cancellation: the store is the one place every stage shares (a volume in compose), so an operator's cancel
    # is a marker here that renderers and pinners look for before and during their work, whichever replica
    # holds the job and whenever it started.
    def cancel(self, job_id: str) -> None:
        self.job_dir(job_id)  # validates the id
        (self.root / CANCELLED).mkdir(exist_ok=True)
        write_atomic(self.root / CANCELLED / job_id, b"cancelled by an operator")

    def is_cancelled(self, job_id: str) -> bool:
        return (self.root / CANCELLED / job_id).exists()

    # Clean-up (status.workers.artifact_sweeper decides what may go).
    def jobs(self) -> Iterator[tuple[str, float]]:
        """(job id, last change as epoch seconds) of every job folder in the store."""
        for entry in os.scandir(self.root):
            if entry.is_dir(follow_symlinks=False) and _JOB_ID.match(entry.name):
                try:
                    yield entry.name, entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:  # removed meanwhile
                    continue

    def remove_job(self, job_id: str) -> int:
        """Delete a job's folder; the bytes it held (0 if it was gone already)."""
        folder = self.job_dir(job_id)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0
        shutil.rmtree(folder, ignore_errors=True)
        return size

    def cancel_markers(self) -> Iterator[tuple[str, float]]:
        """(job id, when) of every cancel marker."""
        folder = self.root / CANCELLED
        if not folder.is_dir():
            return
        for entry in os.scandir(folder):
            if _JOB_ID.match(entry.name):
                try:
                    yield entry.name, entry.stat().st_mtime
                except FileNotFoundError:
                    continue

    def remove_cancel_marker(self, job_id: str) -> None:
        self.job_dir(job_id)  # validates the id
        (self.root / CANCELLED / job_id).unlink(missing_ok=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one. The temporary name is the writer's own: two replicas
    handling the same job (a duplicate delivery) must not rename each other's half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


async def was_cancelled(artifacts: Artifacts, job_id: str) -> bool:
    """Whether an operator cancelled the job: a stat() on the local folder, a HEAD request on the object store,
    off the event loop either way (the renderer and pinner ask before, during and after their work)."""
    return await asyncio.to_thread(artifacts.is_cancelled, job_id)


def open_artifacts(url: str | None, data_dir: Path, check: bool = True) -> Artifacts:
    """The store `MINTPIPE_ARTIFACTS_URL` names: unset, the folder `<data_dir>/artifacts` (unchanged default);
    `s3://bucket/prefix`, the object store, with `<data_dir>/scratch` for this process's local working files.
    Raises mintpipe.config.ObjectStoreConfigError naming the variable when the object store cannot be used."""
    if not url:
        return ArtifactStore(Path(data_dir) / "artifacts")
    from mintpipe.objects.artifacts_s3 import S3ArtifactStore  # boto3 is imported only by deployments that use it
    from mintpipe.objects.s3 import open_bucket

    return S3ArtifactStore(open_bucket(url, check=check), Path(data_dir) / "scratch")
