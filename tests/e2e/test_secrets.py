"""Secrets never show: the whole system (launcher, DEBUG logs) runs with a Pinata JWT (against the Pinata
emulator), an admin token and a broker URL with a password; a job goes to pinned, the pinning backend refuses
the JWT once (the job is parked, then replayed by an operator), admin routes are called with wrong and right
tokens, and bad requests are made. Then every log line and every response (headers and body) is searched for
the secrets."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import launched
from tests.support.emulator import running_emulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
WALLET = "0x000000000000000000000000000000000000dEaD"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtaW50cGlwZS1zZWNyZXRzLXRlc3QifQ."
       + secrets.token_urlsafe(32))
ADMIN_TOKEN = f"adm-{secrets.token_hex(20)}"


@dataclass
class SecretSystem:
    base_url: str
    data_dir: Path
    log_path: Path
    amqp_url: str
    process: subprocess.Popen
    emulator: object
    seen: list[str] = field(default_factory=list)  # every response, headers and body, as text

    def call(self, client: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
        reply = client.request(method, url, **kwargs)
        self.seen.append(f"{reply.status_code} {reply.headers}\n{reply.text}")
        return reply


@pytest.fixture(scope="module")
def secret_system(rabbit_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretSystem]:
    with running_emulator(jwt=JWT) as emulator:
        env = {
            "MINTPIPE_LOG_LEVEL": "DEBUG",  # the chattiest the system gets
            "MINTPIPE_ADMIN_TOKEN": ADMIN_TOKEN,
            "PINNER_BACKEND": "pinata",
            "PINATA_JWT": JWT,
            "PINNER_PINATA_API_URL": emulator.url,
            "PINNER_PINATA_UPLOADS_URL": emulator.url,
        }
        with launched(rabbit_url, tmp_path_factory.mktemp("secrets-system"), renderers=1, env=env) as running:
            yield SecretSystem(running.base_url, running.data_dir, running.log_path, rabbit_url, running.process,
                               emulator)


def wait_for_stage(system: SecretSystem, client: httpx.Client, job_id: str, stage: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = system.call(client, "GET", f"/v1/jobs/{job_id}").json()
        if job["stage"] == stage:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not {stage} in {timeout} s: {job}")


def exercise(system: SecretSystem) -> None:
    """What users and operators do, errors included; every response is kept in system.seen."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=system.base_url, timeout=30) as client:
        # 1. A job runs to pinned through the Pinata backend with the JWT.
        submitted = system.call(client, "POST", "/v1/jobs", headers={"Idempotency-Key": "secrets-1"},
                                json={"settings": {"seed": 11, "frames": 10, "size": 128}, "wallet": WALLET})
        assert submitted.status_code == 202, submitted.text
        first = submitted.json()["job_id"]
        pinned = wait_for_stage(system, client, first, "pinned")
        system.call(client, "GET", f"/v1/jobs/{first}/events")  # a finished job's stream ends at once
        system.call(client, "GET", f"/ipfs/{pinned['assets']['metadata']}")

        # 2. The backend refuses the JWT: the job is parked for an operator, who replays it.
        system.emulator.fault(status=401, count=1)
        parked = system.call(client, "POST", "/v1/jobs", json={"settings": {"seed": 12, "frames": 10, "size": 128},
                                                               "wallet": WALLET}).json()["job_id"]
        deadline = time.monotonic() + 90
        while not (dead := system.call(client, "GET", "/v1/admin/dead-letters/pin", headers=admin).json())["count"]:
            assert time.monotonic() < deadline, "the refused pin job was not parked"
            time.sleep(0.5)
        assert "JWT" in dead["messages"][0]["reason"]
        replay = system.call(client, "POST", "/v1/admin/dead-letters/pin/replay", headers=admin, json={})
        assert replay.json()["replayed"] == 1
        wait_for_stage(system, client, parked, "pinned")

        # 3. Operators with wrong tokens, and the right one.
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN},
                        {"Authorization": f"Bearer {ADMIN_TOKEN}x"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}):
            assert system.call(client, "GET", "/v1/admin/dead-letters/render", headers=headers).status_code == 401
        assert system.call(client, "GET", "/v1/admin/dead-letters/render", headers=admin).status_code == 200
        assert system.call(client, "POST", f"/v1/admin/jobs/{first}/cancel", headers=admin).status_code == 409

        # 4. Errors of every kind.
        system.call(client, "POST", "/v1/jobs", content=b'{"settings": ', headers={"content-type": "application/json"})
        conflict = system.call(client, "POST", "/v1/jobs", headers={"Idempotency-Key": "secrets-1"},
                               json={"settings": {"seed": 99}, "wallet": WALLET})
        assert conflict.status_code == 409
        system.call(client, "POST", "/v1/jobs", content=b"x" * 200_000, headers={"content-type": "application/json"})
        system.call(client, "GET", f"/v1/jobs/{'0' * 32}")
        system.call(client, "GET", "/v1/jobs", params={"cursor": "garbage", "wallet": "0x1"})
        system.call(client, "GET", "/ipfs/not-a-cid")
        system.call(client, "GET", "/healthz")
        system.call(client, "GET", "/metrics")
        system.call(client, "GET", "/openapi.json")


def every_log(system: SecretSystem) -> dict[str, str]:
    logs = {p.name: p.read_text(errors="replace") for p in system.data_dir.rglob("*.log")}
    assert logs.get("launcher.log"), "nothing was logged"
    return logs


def test_no_secret_appears_in_any_log_or_response(secret_system):
    system = secret_system
    exercise(system)
    system.process.send_signal(signal.SIGTERM)  # stop first, so every service has flushed its last lines
    assert system.process.wait(timeout=60) == 0
    logs = every_log(system)
    if os.environ.get("MINTPIPE_TEST_KEEP_LOGS"):
        print({name: len(text.splitlines()) for name, text in logs.items()}, system.data_dir)
    everything = {**logs, **{f"response {i}": text for i, text in enumerate(system.seen)}}
    assert len(everything) > 25
    assert '"job_id"' in logs["launcher.log"] and "pinata" in logs["launcher.log"].lower()

    password = system.amqp_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    for name, text in everything.items():
        for secret, what in ((JWT, "Pinata JWT"), (JWT.rsplit(".", 1)[1], "the JWT's signature"),
                             (ADMIN_TOKEN, "admin token"), (f":{password}@", "broker password")):
            assert secret not in text, f"{what} in {name}: …{text[max(0, text.find(secret) - 200):][:400]}…"
        # Where a broker URL is logged at all, its password is masked.
        for start in (i for i in range(len(text)) if text.startswith("amqp://", i)):
            url = text[start:start + 200].split()[0]
            if "@" in url:
                assert url.split("://", 1)[1].split("@", 1)[0].endswith(":***"), f"{name}: {url}"
