"""mintpipe split over three "hosts" (tests/support/netns.py): gateway + status x2 on `app`, renderers on
`render`, the pinner on `pin`. Every service is its own process with its own empty data folder (and TMPDIR);
what crosses hosts goes through RabbitMQ, PostgreSQL (MINTPIPE_DATABASE_URL), the S3 store
(MINTPIPE_ARTIFACTS_URL) and the pinning backend, each reached through the machine's forwarders.

    with multihost_system(net, deps, root, renderers=2) as system:
        system.status[0].url, system.status[1].url       # the bridges, as the test reaches them
        system.kill("renderer-0")                         # SIGKILL, as a host dying would
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import free_port
from tests.support.netns import Host, Network

START_TIMEOUT = 120.0  # seconds for every service to be healthy; ~10 s idle, far more on a busy 2-core machine
STOP_TIMEOUT = 30.0


@dataclass
class Deps:
    """The machine-side services every host reaches (URLs on the machine's 127.0.0.1)."""

    amqp_url: str
    database_url: str
    artifacts_url: str
    aws_env: dict[str, str]  # AWS_ENDPOINT_URL (a 127.0.0.1 URL) and the credentials
    pinata_url: str
    pinata_jwt: str
    chain_env: dict[str, str]  # MINTPIPE_CHAIN_* with a 127.0.0.1 RPC URL


@dataclass
class Service:
    name: str
    host: Host
    module: str
    env: dict[str, str]
    data_dir: Path
    log_path: Path
    grpc_port: int
    http_port: int | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{self.http_port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.host.command([sys.executable, "-m", self.module]), env=self.env,
                                            cwd=self.data_dir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    def healthy(self) -> bool:
        try:
            with grpc.insecure_channel(f"{self.host.address}:{self.grpc_port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return False
            return self.http_port is None or httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except (grpc.RpcError, httpx.HTTPError):
            return False

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class System:
    services: dict[str, Service]
    killed: list[str] = field(default_factory=list)

    @property
    def status(self) -> list[Service]:
        return [s for n, s in self.services.items() if n.startswith("status-")]

    def kill(self, name: str) -> None:
        service = self.services[name]
        assert service.process is not None and service.process.poll() is None, f"{name} is not running"
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(10)
        self.killed.append(name)

    def wait_healthy(self, names: list[str], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                service = self.services[name]
                if service.process is not None and service.process.poll() is not None:
                    pytest.fail(f"{name} exited {service.process.returncode} while starting:\n{service.log_tail()}")
                if service.healthy():
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}:\n{self.services[n].log_tail(1500)}" for n in pending)
                pytest.fail(f"not healthy within {timeout:.0f} s: {pending}\n{tails}")
            if pending:
                time.sleep(0.3)

    def logs(self) -> str:
        return "".join(s.log_path.read_text(errors="replace") for s in self.services.values() if s.log_path.exists())

    def stop(self) -> None:
        # Drain order of the launcher: intake first, the workers, the job store last.
        order = sorted(self.services.values(), key=lambda s: {"gateway": 0, "status": 2}.get(s.module, 1))
        for service in order:
            if service.process is not None and service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in order:
            if service.process is None:
                continue
            try:
                service.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait(10)


def _env(net: Network, host: Host, deps: Deps, data_dir: Path, prefix: str) -> dict[str, str]:
    """A service's environment as its host sees the world: every machine URL through its own forwarder."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("MINTPIPE_", "STATUS_", "GATEWAY_", "RENDERER_", "PINNER_", "AWS_", "PINATA_"))}
    aws = {**deps.aws_env, "AWS_ENDPOINT_URL": net.url(host, deps.aws_env["AWS_ENDPOINT_URL"])}
    return {**inherited, **aws,
            "MINTPIPE_AMQP_URL": net.url(host, deps.amqp_url),
            "MINTPIPE_DATABASE_URL": net.url(host, deps.database_url),
            "MINTPIPE_ARTIFACTS_URL": deps.artifacts_url,
            "MINTPIPE_BROKER_PREFIX": prefix,
            "MINTPIPE_DATA_DIR": str(data_dir),
            "MINTPIPE_GRACE_SECONDS": "10",
            "TMPDIR": str(data_dir / "tmp"),
            "PYTHONUNBUFFERED": "1"}


@contextmanager
def multihost_system(net: Network, deps: Deps, root: Path, *, renderers: int = 2,
                     status_env: dict[str, str] | None = None) -> Iterator[System]:
    app, render, pin = net["app"], net["render"], net["pin"]
    prefix = f"mh{uuid.uuid4().hex[:8]}"
    services: dict[str, Service] = {}

    def add(name: str, host: Host, module: str, extra: dict[str, str], grpc_port: int,
            http_port: int | None = None) -> Service:
        data_dir = root / name  # its own empty folder: nothing on disk is shared between services
        (data_dir / "tmp").mkdir(parents=True)
        # MINTPIPE_REPLICA names the replica in the operators' stage history (which renderer rendered what).
        env = {**_env(net, host, deps, data_dir, prefix), "MINTPIPE_REPLICA": name, **extra}
        services[name] = Service(name, host, module, env, data_dir, root / f"{name}.log", grpc_port, http_port)
        return services[name]

    gateway_port = free_port()
    status_ports = [(free_port(), free_port()) for _ in range(2)]
    renderer_ports = [free_port() for _ in range(renderers)]
    # Previews go from app to the renderers through the machine (no route between namespaces otherwise).
    preview_targets = [net.expose(app, port, render.address) for port in renderer_ports]
    add("gateway", app, "gateway", {
        "GATEWAY_GRPC_HOST": app.bind, "GATEWAY_GRPC_PORT": str(gateway_port), "GATEWAY_METRICS_PORT": "0",
        # Both replicas, first reachable first: the gateway outlives either.
        "GATEWAY_STATUS_TARGET": "ipv4:" + ",".join(f"{app.bind}:{g}" for g, _ in status_ports)}, gateway_port)
    chain = {**deps.chain_env,
             "MINTPIPE_CHAIN_RPC_URL": net.url(app, deps.chain_env["MINTPIPE_CHAIN_RPC_URL"])} if deps.chain_env else {}
    for i, (grpc_port, http_port) in enumerate(status_ports):
        add(f"status-{i}", app, "status", {
            **chain, "STATUS_GRPC_HOST": app.bind, "STATUS_GRPC_PORT": str(grpc_port),
            "STATUS_HTTP_HOST": app.bind, "STATUS_HTTP_PORT": str(http_port),
            "STATUS_GATEWAY_TARGET": f"{app.bind}:{gateway_port}",
            "STATUS_RENDERER_TARGET": "ipv4:" + ",".join(f"{a}:{p}" for a, p in preview_targets),
            **(status_env or {})}, grpc_port, http_port)
    for i, port in enumerate(renderer_ports):
        add(f"renderer-{i}", render, "renderer", {
            "RENDERER_HEALTH_HOST": render.bind, "RENDERER_HEALTH_PORT": str(port), "RENDERER_METRICS_PORT": "0",
            "RENDERER_RENDER_THREADS": "1"}, port)
    pinner_port = free_port()
    add("pinner-0", pin, "pinner", {
        "PINNER_HEALTH_HOST": pin.bind, "PINNER_HEALTH_PORT": str(pinner_port), "PINNER_METRICS_PORT": "0",
        "PINNER_BACKEND": "pinata", "PINNER_PINATA_JWT": deps.pinata_jwt,
        "PINNER_PINATA_API_URL": net.url(pin, deps.pinata_url),
        "PINNER_PINATA_UPLOADS_URL": net.url(pin, deps.pinata_url)}, pinner_port)

    system = System(services)
    try:
        # status-0 first, alone: it applies the migrations and takes the leader lock, so killing it later
        # also proves the takeover.
        services["status-0"].start()
        system.wait_healthy(["status-0"])
        for name, service in services.items():
            if name != "status-0":
                service.start()
        system.wait_healthy([n for n in services if n != "status-0"])
        yield system
    finally:
        system.stop()
