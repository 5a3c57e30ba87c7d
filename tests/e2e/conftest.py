"""The whole system, started by the launcher exactly as a user would (`mintpipe up`), on its own vhost,
queue prefix, ports and data folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, free_port_base
from tests.support.broker import drop_prefix


@dataclass
class System:
    base_url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen


@contextmanager
def launched(rabbit_url: str, data_dir: Path, renderers: int = 2, pinners: int = 1,
             env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> Iterator[System]:
    """`mintpipe up` as a user runs it, on its own queue prefix, ports and data folder; stopped with SIGTERM,
    which must end it cleanly (exit 0) within a minute; its queues and exchanges are deleted afterwards."""
    log_path = data_dir / "launcher.log"
    http_port = free_port()
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    full_env = {
        **os.environ,
        "MINTPIPE_AMQP_URL": rabbit_url,
        "MINTPIPE_BROKER_PREFIX": prefix,
        "MINTPIPE_DATA_DIR": str(data_dir),
        "MINTPIPE_HTTP_PORT": str(http_port),
        "MINTPIPE_PORT_BASE": str(free_port_base()),
        "MINTPIPE_GRACE_SECONDS": "10",
        **(env or {}),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher", "up", "--renderers", str(renderers), "--pinners", str(pinners),
             *(extra_args or [])],
            env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 90
        while b"mintpipe is up" not in log_path.read_bytes():
            if process.poll() is not None:
                pytest.fail(f"launcher exited {process.returncode}:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"system not up in 90 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.3)
        assert httpx.get(f"{base_url}/healthz").status_code == 200
        yield System(base_url, data_dir, log_path, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                pytest.fail("launcher did not stop within 60 s of SIGTERM")
        drop_prefix(rabbit_url, full_env["MINTPIPE_BROKER_PREFIX"])  # the system's queues, now it has stopped
    assert process.returncode == 0, log_path.read_text()[-4000:]


@pytest.fixture(scope="module")
def system(rabbit_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    # A pinned job's rendered files leave at the next sweep (test_pipeline checks that they do).
    env = {"STATUS_ARTIFACT_KEEP_PINNED_SECONDS": "0", "STATUS_ARTIFACT_SWEEP_INTERVAL_SECONDS": "1"}
    with launched(rabbit_url, tmp_path_factory.mktemp("system-data"), env=env) as running:
        yield running
