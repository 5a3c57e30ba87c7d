"""One system for the whole chaos module: a RabbitMQ node of our own, the Pinata emulator (it counts uploads
per CID), and `mintpipe up --renderers 3 --pinners 2` on top, plus a watcher following every job's stage.
Everything is stopped at the end, failures included."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from mintpipe.messaging.broker import Topology
from tests.chaos import rabbit
from tests.chaos.harness import Clients, StageWatcher, System, settings_for
from tests.chaos.rabbit import RabbitNode
from tests.conftest import free_port, free_port_base
from tests.support.emulator import Emulator, running_emulator

ADMIN_TOKEN = "chaos-admin-token"
RENDERERS, PINNERS = 3, 2


@pytest.fixture(scope="module")
def chaos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chaos")


@pytest.fixture(scope="module")
def rabbit_node(chaos_dir: Path) -> Iterator[RabbitNode]:
    if not rabbit.available():
        pytest.skip("rabbitmq-server is not installed")
    node = RabbitNode(chaos_dir / "rabbit")
    try:
        node.start()
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    # The emulator's own limit is far above what the test needs: its 429s come from injected bursts.
    with running_emulator(jwt="chaos-jwt", rate_limit=10_000, window=60) as emu:
        yield emu


@pytest.fixture(scope="module")
def system(rabbit_node: RabbitNode, emulator: Emulator, chaos_dir: Path) -> Iterator[System]:
    data_dir = chaos_dir / "data"
    data_dir.mkdir()
    log_path = chaos_dir / "launcher.log"
    http_port, port_base = free_port(), free_port_base()
    prefix = f"chaos{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "MINTPIPE_AMQP_URL": rabbit_node.url, "MINTPIPE_BROKER_PREFIX": prefix,
        "MINTPIPE_DATA_DIR": str(data_dir), "MINTPIPE_HTTP_PORT": str(http_port),
        "MINTPIPE_PORT_BASE": str(port_base), "MINTPIPE_GRACE_SECONDS": "5",
        "MINTPIPE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PINNER_BACKEND": "pinata", "PINATA_JWT": emulator.jwt,
        "PINNER_PINATA_API_URL": emulator.url, "PINNER_PINATA_UPLOADS_URL": emulator.url,
        # Abuse limits and the shared request window are not what these tests are about: out of the way.
        "PINNER_RATE_LIMIT": "10000", "PINNER_RATE_WINDOW_SECONDS": "60",
        "STATUS_IP_RATE_PER_MINUTE": "100000", "STATUS_IP_BURST": "10000",
        "GATEWAY_WALLET_RATE_PER_MINUTE": "100000", "GATEWAY_WALLET_BURST": "10000",
        # A job whose publish was never confirmed (broker killed in between) is swept up soon.
        "STATUS_ORPHAN_AFTER_SECONDS": "10", "STATUS_SWEEP_INTERVAL_SECONDS": "5",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher", "up", "--renderers", str(RENDERERS), "--pinners", str(PINNERS)],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    launched = System(process, f"http://127.0.0.1:{http_port}", port_base, data_dir, log_path, prefix)
    try:
        deadline = time.monotonic() + 90
        while b"mintpipe is up" not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the system did not come up:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.3)
        assert httpx.get(f"{launched.base_url}/healthz").status_code == 200
        yield launched
    finally:
        launched.stop()


@dataclass
class ChaosRun:
    """Shared by the module's tests: the system, its faults, and what was measured along the way."""

    system: System
    node: RabbitNode
    emulator: Emulator
    chaos_dir: Path
    watcher: StageWatcher
    clients: Clients
    rng: random.Random
    seed: int
    topology: Topology
    started: float = field(default_factory=time.monotonic)
    jobs: dict[str, list[str]] = field(default_factory=dict)  # scenario -> acknowledged job ids
    faults: dict[str, list[str]] = field(default_factory=dict)  # scenario -> what was done to the system
    counts: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    _next_seed: int = 1

    def new_jobs(self, scenario: str, count: int) -> list[tuple[str, dict]]:
        out = []
        for _ in range(count):
            out.append((f"chaos-{self.seed}-{self._next_seed}", settings_for(self._next_seed)))
            self._next_seed += 1
        return out

    def note(self, scenario: str, what: str) -> None:
        elapsed = time.monotonic() - self.started
        self.faults.setdefault(scenario, []).append(f"t+{elapsed:6.1f}s {what}")

    def all_jobs(self) -> list[str]:
        return [j for ids in self.jobs.values() for j in ids]


@pytest.fixture(scope="module")
async def chaos(system: System, rabbit_node: RabbitNode, emulator: Emulator,
                chaos_dir: Path) -> AsyncIterator[ChaosRun]:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))
    watcher = StageWatcher(system.base_url)
    run = ChaosRun(system, rabbit_node, emulator, chaos_dir, watcher, Clients(system.base_url),
                   random.Random(seed), seed, Topology(system.prefix))
    task = asyncio.create_task(watcher.run())
    try:
        yield run
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
