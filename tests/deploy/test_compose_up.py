"""docker-compose.yml run for real: the images built here with no registry (scripts/build_images.sh), the whole
topology up with three renderers, jobs taken to `pinned` through the published bridge port while a renderer is
killed mid-render and RabbitMQ's container is restarted, and nothing lost. Its own compose project per run,
removed with its volumes at the end. A machine where Docker cannot run fails here, saying why."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from mintpipe.cid import cid_of_bytes
from tests.conftest import free_port

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
# Enough default-sized jobs that the run lasts while the renderer is killed and the broker restarted: with 8
# small clips (30 frames of 256 px) an idle 2-core machine pinned them all 3 s after submission, before any
# renderer could be caught rendering (CI saw "no renderer was seen rendering a job"). 24 default jobs keep three
# renderers busy for ~15-20 s here.
JOBS = 24
SETTINGS: dict = {}
SKIP_HINT = "(deselect these tests with -m 'not deploy' on a machine meant to run without Docker)"


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def require_docker() -> None:
    """Docker engine and Compose v2 present and answering, or a failure naming what is missing."""
    try:
        info = _run(["docker", "info", "--format", "{{.ServerVersion}}"], 30)
    except FileNotFoundError:
        pytest.fail(f"no `docker` command: scripts/bootstrap.sh installs docker.io {SKIP_HINT}")
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers ({info.stderr.strip()[-300:]}): scripts/bootstrap.sh starts dockerd "
                    f"unless MINTPIPE_SKIP_DOCKER=1 {SKIP_HINT}")
    compose = _run(["docker", "compose", "version", "--short"], 30)
    if compose.returncode != 0:
        pytest.fail(f"no Compose v2 (`docker compose`): {compose.stderr.strip()[-300:]} {SKIP_HINT}")


@dataclass
class Deployment:
    project: str
    env: dict[str, str]
    base_url: str
    start: float = field(default_factory=time.monotonic)
    ledger: list[str] = field(default_factory=list)

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        done = _run(["docker", "compose", "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), *args],
                    timeout, self.env)
        if check and done.returncode != 0:
            pytest.fail(f"docker compose {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}\n"
                        f"{self.logs()}")
        return done

    def container(self, service: str, index: int = 1) -> str:
        return f"{self.project}-{service}-{index}"

    def logs(self, tail: int = 40) -> str:
        done = _run(["docker", "compose", "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), "logs",
                     "--no-color", "--tail", str(tail)], 60, self.env)
        return done.stdout[-12000:]

    def note(self, what: str) -> None:
        """A line of the run's ledger, timed from the start of the image build."""
        self.ledger.append(f"{time.monotonic() - self.start:7.1f} s  {what}")


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployment]:
    require_docker()
    start = time.monotonic()
    built = _run(["bash", "scripts/build_images.sh"], 1200)
    if built.returncode != 0:
        pytest.fail(f"scripts/build_images.sh exited {built.returncode}:\n{built.stdout[-2000:]}{built.stderr[-3000:]}")
    port = free_port()
    deployment = Deployment(f"mpdeploy{uuid.uuid4().hex[:8]}", {**os.environ, "MINTPIPE_HTTP_PORT": str(port)},
                            f"http://127.0.0.1:{port}", start)
    steps = re.sub(r"\x1b\[[0-9;]*m", "", built.stdout)
    deployment.note("images built: " + "; ".join(
        line.split("[images] ", 1)[1] for line in steps.splitlines() if "[images] " in line and "done:" not in line))
    try:
        deployment.compose("up", "-d", "--wait", "--scale", "renderer=3", timeout=420)
        deployment.note("compose up --wait --scale renderer=3: every service healthy")
        yield deployment
    finally:
        down = deployment.compose("down", "-v", "--remove-orphans", "--timeout", "60", timeout=300, check=False)
        label = f"label=com.docker.compose.project={deployment.project}"
        left = _run(["docker", "volume", "ls", "-q", "--filter", label], 30).stdout.split()
        deployment.note(f"down -v: exit {down.returncode}, volumes left {left}")
        sys.stderr.write("\ncompose ledger:\n" + "\n".join(deployment.ledger) + "\n")
        assert down.returncode == 0 and not left, (down.stderr[-2000:], left)


def test_no_volume_is_shared_between_services(deployed: Deployment):
    ids = deployed.compose("ps", "-q").stdout.split()
    inspected = json.loads(_run(["docker", "inspect", *ids], 60).stdout)
    users: dict[str, set[str]] = {}
    for c in inspected:
        service = c["Config"]["Labels"]["com.docker.compose.service"]
        for mount in c["Mounts"]:
            assert mount["Type"] == "volume", f"{service}: a {mount['Type']} mount of {mount.get('Source')}"
            users.setdefault(mount["Name"], set()).add(service)
    shared = {name: sorted(s) for name, s in users.items() if len(s) > 1}
    assert not shared, shared
    assert {s for s in users.values() for s in s} == {"postgres", "seaweedfs", "rabbitmq"}, users
    services = {c["Config"]["Labels"]["com.docker.compose.service"] for c in inspected}
    assert sum(c["Config"]["Labels"]["com.docker.compose.service"] == "renderer" for c in inspected) == 3
    assert sum(c["Config"]["Labels"]["com.docker.compose.service"] == "status" for c in inspected) == 2
    assert {"gateway", "pinner", "bridge"} <= services


def _busy_renderer(d: Deployment, rendering: set[str]) -> str | None:
    """A renderer container whose log names a job that is rendering now."""
    for i in (1, 2, 3):
        log = _run(["docker", "logs", "--tail", "200", d.container("renderer", i)], 30)
        text = log.stdout + log.stderr
        if any(job_id in text for job_id in rendering):
            return d.container("renderer", i)
    return None


def test_jobs_reach_pinned_through_a_renderer_kill_and_a_broker_restart(deployed: Deployment):
    d = deployed
    jobs: dict[str, dict] = {}
    with httpx.Client(base_url=d.base_url, timeout=30) as client:
        for seed in range(JOBS):
            wallet = f"0x{seed + 1:040x}"  # a collector each: one wallet's burst is 20 (GATEWAY_WALLET_BURST)
            reply = client.post("/v1/jobs", json={"settings": {"seed": 700 + seed, **SETTINGS}, "wallet": wallet})
            assert reply.status_code == 202, reply.text
            jobs[reply.json()["job_id"]] = reply.json()
        d.note(f"{JOBS} jobs submitted through the bridge port")
        killed = restarted = None
        deadline = time.monotonic() + 600
        while True:
            for job_id in jobs:
                try:
                    reply = client.get(f"/v1/jobs/{job_id}")
                except httpx.TransportError:
                    continue  # a bridge between two status replicas' answers: asked again next round
                if reply.status_code == 200:
                    jobs[job_id] = reply.json()
            stages = [j["stage"] for j in jobs.values()]
            rendering = {i for i, j in jobs.items() if j["stage"] == "rendering"}
            if killed is None and rendering:
                killed = _busy_renderer(d, rendering)
                if killed:
                    _run(["docker", "kill", "--signal", "KILL", killed], 30).check_returncode()
                    d.note(f"killed {killed} (SIGKILL) mid-render; stages {sorted(stages)}")
            if killed and restarted is None and "pinned" in stages and len(set(stages)) > 1:
                # Mid-run: some jobs done, some not. RabbitMQ gets 30 s to stop cleanly, as an operator's restart.
                restarted = _run(["docker", "restart", "--time", "30", d.container("rabbitmq")], 120)
                restarted.check_returncode()
                d.note(f"restarted {d.container('rabbitmq')}; stages {sorted(stages)}")
            if all(s in ("pinned", "failed") for s in stages) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        d.note("final stages: " + json.dumps({s: stages.count(s) for s in sorted(set(stages))}))
        assert killed, "no renderer was seen rendering a job, so none was killed mid-render"
        assert restarted, f"the run ended before RabbitMQ could be restarted mid-run: {stages}"
        failed = {i: j.get("error") for i, j in jobs.items() if j["stage"] == "failed"}
        assert not failed, f"jobs failed: {failed}\n{d.logs()}"
        unfinished = {i: j["stage"] for i, j in jobs.items() if j["stage"] != "pinned"}
        assert not unfinished, f"jobs not pinned in 10 min: {unfinished}\n{d.logs()}"

        # What was pinned is served through the bridge by whichever status replica answers, from the object store
        # (no status container shares a disk with the pinner).
        for job in jobs.values():
            cid = job["token_uri"].removeprefix("ipfs://")
            served = client.get(f"/ipfs/{cid}")
            assert served.status_code == 200 and cid_of_bytes(served.content) == cid, (cid, served.status_code)
            image = served.json()["image"].removeprefix("ipfs://")
            gif = client.get(f"/ipfs/{image}")
            assert gif.content[:6] == b"GIF89a" and cid_of_bytes(gif.content) == image
        d.note(f"all {JOBS} pinned, none failed; every metadata and GIF served through the bridge by CID")
