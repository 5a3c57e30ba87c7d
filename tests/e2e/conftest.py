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
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, free_port_base


@dataclass
class System:
    base_url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen


@pytest.fixture(scope="module")
def system(rabbit_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    data_dir = tmp_path_factory.mktemp("system-data")
    log_path = data_dir / "launcher.log"
    http_port = free_port()
    env = {
        **os.environ,
        "MINTPIPE_AMQP_URL": rabbit_url,
        "MINTPIPE_BROKER_PREFIX": f"e2e{uuid.uuid4().hex[:8]}",
        "MINTPIPE_DATA_DIR": str(data_dir),
        "MINTPIPE_HTTP_PORT": str(http_port),
        "MINTPIPE_PORT_BASE": str(free_port_base()),
        "MINTPIPE_GRACE_SECONDS": "10",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "launcher", "up", "--renderers", "2", "--pinners", "1"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            pytest.fail(f"launcher exited {process.returncode}:\n{log_path.read_text()[-4000:]}")
        if b"mintpipe is up" in log_path.read_bytes():
            break
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"system not up in 90 s:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.3)
    assert httpx.get(f"{base_url}/healthz").status_code == 200
    yield System(base_url, data_dir, log_path, process)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("launcher did not stop within 60 s of SIGTERM")
    assert process.returncode == 0, log_path.read_text()[-4000:]
