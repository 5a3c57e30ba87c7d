"""An operator's cancel over HTTP stops a job the whole system is rendering: the render stops, nothing is
pinned, and the job says why."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

from tests.e2e.conftest import launched

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
WALLET = "0x000000000000000000000000000000000000dEaD"
TOKEN = f"adm-{secrets.token_hex(16)}"


def writing(job_dir) -> bool:
    return job_dir.exists() and any(p.name.endswith(".tmp") for p in job_dir.iterdir())


def test_cancel_stops_a_render_in_flight_and_nothing_is_pinned(rabbit_url, tmp_path):
    with launched(rabbit_url, tmp_path, renderers=1, env={"MINTPIPE_ADMIN_TOKEN": TOKEN}) as system, \
            httpx.Client(base_url=system.base_url, timeout=30) as client:
        # The largest job the schema allows: ~15 s to render here, so the cancel lands mid-render.
        job_id = client.post("/v1/jobs", json={"settings": {"seed": 3, "frames": 240, "size": 1024},
                                                "wallet": WALLET}).json()["job_id"]
        job_dir = system.data_dir / "artifacts" / job_id
        deadline = time.monotonic() + 60
        while not writing(job_dir):
            assert time.monotonic() < deadline, "the job never started writing its files"
            time.sleep(0.05)
        assert client.get(f"/v1/jobs/{job_id}").json()["stage"] == "rendering"

        reply = client.post(f"/v1/admin/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 200 and reply.json()["error"] == "cancelled by an operator"

        # The renderer gives the job up within a second: its half-written files go and nothing reaches the store.
        deadline = time.monotonic() + 5
        while writing(job_dir):
            assert time.monotonic() < deadline, "the render was still writing 5 s after the cancel"
            time.sleep(0.1)
        time.sleep(1.0)
        assert not (job_dir / "manifest.json").exists()
        ipfs = system.data_dir / "ipfs"
        assert not ipfs.exists() or not any(p.is_file() for p in ipfs.rglob("*")), "something was pinned"
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["stage"] == "failed" and job["error"] == "cancelled by an operator" and job["token_uri"] is None
