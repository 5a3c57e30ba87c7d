"""The whole system (`mintpipe up`) on an S3 object store (a real SeaweedFS), every service on its own empty data
folder (RENDERER_/PINNER_/STATUS_/GATEWAY_DATA_DIR): jobs reach `pinned`, status serves the pins from the store,
the sweeper empties the store after them, and an operator's cancel on status stops a render on the renderer."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mintpipe.core.cid import cid_of_bytes
from tests.e2e.conftest import System, launched

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
WALLET = "0x000000000000000000000000000000000000dEaD"
TOKEN = f"adm-{secrets.token_hex(16)}"
SERVICES = ("renderer", "pinner", "status", "gateway")


class S3System:
    def __init__(self, system: System, seaweed, bucket: str, prefix: str, folders: dict[str, Path]) -> None:
        self.system, self.seaweed, self.bucket, self.prefix, self.folders = system, seaweed, bucket, prefix, folders

    def keys(self, under: str) -> list[str]:
        return self.seaweed.keys(self.bucket, f"{self.prefix}/{under}")


@pytest.fixture(scope="module")
def s3_system(rabbit_url, seaweed, s3_bucket, tmp_path_factory) -> Iterator[S3System]:
    root = tmp_path_factory.mktemp("s3-system")
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    folders = {name: root / name for name in SERVICES}
    (root / "launcher").mkdir()
    env = {**seaweed.env(f"s3://{s3_bucket}/{prefix}"), "MINTPIPE_ADMIN_TOKEN": TOKEN,
           **{f"{name.upper()}_DATA_DIR": str(folder) for name, folder in folders.items()},
           # A pinned job's rendered files leave the store at the next sweep.
           "STATUS_ARTIFACT_KEEP_PINNED_SECONDS": "0", "STATUS_ARTIFACT_SWEEP_INTERVAL_SECONDS": "1"}
    with launched(rabbit_url, root / "launcher", renderers=1, pinners=1, env=env) as system:
        yield S3System(system, seaweed, s3_bucket, prefix, folders)


def wait_for_stage(client: httpx.Client, job_id: str, stages: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["stage"] in stages:
            return job
        assert time.monotonic() < deadline, f"job still {job['stage']} after {timeout} s"
        time.sleep(0.1)


def test_a_job_is_pinned_served_and_swept_through_the_object_store(s3_system):
    with httpx.Client(base_url=s3_system.system.base_url, timeout=30) as client:
        reply = client.post("/v1/jobs", json={"settings": {"seed": 21, "frames": 24, "size": 256},
                                              "wallet": WALLET})
        assert reply.status_code == 202, reply.text
        job = wait_for_stage(client, reply.json()["job_id"], {"pinned", "failed"})
        assert job["stage"] == "pinned", job["error"]
        gif_cid = job["assets"]["image"].removeprefix("ipfs://")
        gif = client.get(f"/ipfs/{gif_cid}")
        assert gif.status_code == 200 and gif.headers["content-type"] == "image/gif"
        assert cid_of_bytes(gif.content) == gif_cid
        meta = client.get(f"/ipfs/{job['token_uri'].removeprefix('ipfs://')}")
        assert meta.headers["content-type"] == "application/json" and meta.json()["image"] == job["assets"]["image"]

        # The pins are objects in the store; no service ever had an artifacts or ipfs folder of its own.
        assert f"{s3_system.prefix}/ipfs/{gif_cid}" in s3_system.keys("ipfs/")
        for name, folder in s3_system.folders.items():
            assert not (folder / "artifacts").exists() and not (folder / "ipfs").exists(), name
            scratch = folder / "scratch"
            assert not scratch.exists() or not any(p.is_file() for p in scratch.rglob("*")), name

        # Every service's log (the launcher gathers them) never shows the object store's secret key.
        logs = s3_system.system.log_path.read_text(errors="replace")
        assert "artifacts" in logs and s3_system.seaweed.secret_key not in logs

        # The status service's sweeper removes the pinned job's rendered files from the store.
        deadline = time.monotonic() + 30
        while s3_system.keys(f"artifacts/{job['job_id']}/"):
            assert time.monotonic() < deadline, "the pinned job's files were never swept from the store"
            time.sleep(0.5)


def test_a_cancel_on_status_stops_the_render_on_another_data_folder(s3_system):
    with httpx.Client(base_url=s3_system.system.base_url, timeout=30) as client:
        # The largest job the schema allows: ~15 s to render here, so the cancel lands mid-render.
        job_id = client.post("/v1/jobs", json={"settings": {"seed": 3, "frames": 240, "size": 1024},
                                                "wallet": WALLET}).json()["job_id"]
        wait_for_stage(client, job_id, {"rendering"}, timeout=60)
        # Frames are being drawn into the renderer's scratch folder before the cancel: otherwise the checks below
        # would pass with a renderer that ignores cancels (the stage says `rendering` before any file is opened).
        scratch = s3_system.folders["renderer"] / "scratch"
        deadline = time.monotonic() + 30
        while not any(p.is_file() for p in scratch.rglob("*")):
            assert time.monotonic() < deadline, "no render in progress to cancel"
            time.sleep(0.05)
        reply = client.post(f"/v1/admin/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 200 and reply.json()["error"] == "cancelled by an operator"
        assert f"{s3_system.prefix}/cancelled/{job_id}" in s3_system.keys("cancelled/")

        # The renderer (its own data folder) sees the marker in the store and gives the job up: its scratch
        # folder empties within seconds, nothing is uploaded or pinned.
        deadline = time.monotonic() + 5
        while any(p.is_file() for p in scratch.rglob("*")):
            assert time.monotonic() < deadline, "the render was still writing 5 s after the cancel"
            time.sleep(0.1)
        time.sleep(1.0)
        assert s3_system.keys(f"artifacts/{job_id}/") == []
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["stage"] == "failed" and job["error"] == "cancelled by an operator" and job["token_uri"] is None
