"""The artifact store: where rendered files wait for the pin stage (claim check).

Big bytes never travel through the broker; messages carry keys into this store. By default a local folder
(a volume shared by renderer and pinner in compose). Keys are relative paths `<job_id>/<file>`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MANIFEST = "manifest.json"
CANCELLED = "cancelled"  # a folder of markers named by job id; never a job id itself


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

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

    # Clean-up (status.artifact_sweeper decides what may go).
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
