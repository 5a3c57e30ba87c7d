"""`mintpipe up --status-replicas N` (issue 11): N bridges on one PostgreSQL database; a job submitted to one
is followed live to `pinned` on the other, whichever replica consumed its events."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from httpx_sse import connect_sse

from tests.e2e.conftest import launched

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WALLET = "0x000000000000000000000000000000000000dEaD"


def test_several_replicas_need_postgresql(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MINTPIPE_DATABASE_URL", "STATUS_DATABASE_URL")}
    result = subprocess.run([sys.executable, "-m", "launcher", "up", "--status-replicas", "2",
                             "--data-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--status-replicas" in result.stderr and "MINTPIPE_DATABASE_URL" in result.stderr
    assert not any(tmp_path.iterdir()), "nothing was started"


def test_a_job_submitted_to_one_replica_is_followed_live_on_the_other(rabbit_url, pg_dsn, tmp_path):
    # Watchers re-read the store only every 600 s: what the second bridge streams comes by the change feed.
    env = {"MINTPIPE_DATABASE_URL": pg_dsn, "STATUS_WATCH_POLL_SECONDS": "600"}
    with launched(rabbit_url, tmp_path, renderers=1, pinners=1, env=env,
                  extra_args=["--status-replicas", "2"]) as system:
        first = system.base_url
        port = int(first.rsplit(":", 1)[1])
        second = f"http://127.0.0.1:{port + 1}"
        replicas = [httpx.get(f"{url}/healthz", timeout=10).json()["replica"] for url in (first, second)]
        assert [r["name"] for r in replicas] == ["status", "status-1"]
        assert sum(r["leader"] for r in replicas) == 1, replicas

        reply = httpx.post(f"{first}/v1/jobs", json={"settings": {"seed": 5}, "wallet": WALLET}, timeout=30)
        assert reply.status_code == 202, reply.text
        job_id = reply.json()["job_id"]
        seen = []
        with httpx.Client(base_url=second, timeout=30) as client, \
                connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(10, read=120)) as sse:
            for event in sse.iter_sse():
                seen.append(json.loads(event.data))
        stages = [e["stage"] for e in seen]
        assert stages[-1] == "pinned", seen[-1]
        assert "rendering" in stages and len(seen) >= 5, "the other replica's watcher did not see the job live"
        assert httpx.get(f"{second}/v1/jobs/{job_id}", timeout=10).json()["stage"] == "pinned"
