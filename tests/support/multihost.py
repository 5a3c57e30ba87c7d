"""mintpipe split over several "hosts" (tests/support/netns.py): gateway + status x2 on `app`, renderers on
`render`, the pinner on `pin`, and with a chain a minter on each of `minter_hosts` (default: one on `app`, one on
a host of its own, `mint`). Every service is its own process with its own empty data folder (and TMPDIR); what
crosses hosts goes through RabbitMQ, PostgreSQL (MINTPIPE_DATABASE_URL, shared by the status replicas and the
minters), the S3 store (MINTPIPE_ARTIFACTS_URL), the pinning backend and the chain node, each reached through
the machine's forwarders; status reaches the minters over gRPC (STATUS_MINTER_TARGET names every one).

Only the minters get the chain's keys (MINTPIPE_CHAIN_SIGNER_KEY, MINTPIPE_CHAIN_RELAYER_KEY); status, the
gateway, the renderers and the pinner get none.

    with multihost_system(net, deps, root, renderers=2) as system:
        system.status[0].url, system.status[1].url       # the bridges, as the test reaches them
        system.minters                                    # the minter replicas, one per minter host
        system.kill("renderer-0")                         # SIGKILL, as a host dying would
        service.events("relayed mint sent")               # its JSON log lines with that event, each with `at`
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
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
    # MINTPIPE_CHAIN_* (RPC URL on 127.0.0.1, contract, signer key, relayer key for relays): the minters' only;
    # empty: no chain, no minter, jobs end at pinned. See minter_chain_env for what else may come in here.
    chain_env: dict[str, str]


KEY_VARIABLES = ("MINTPIPE_CHAIN_SIGNER_KEY", "MINTPIPE_CHAIN_RELAYER_KEY", "MINTER_CHAIN_SIGNER_KEY",
                 "MINTER_CHAIN_RELAYER_KEY")


def minter_chain_env(chain_env: dict[str, str]) -> dict[str, str]:
    """The chain's variables as a minter reads them. tests/support/chain.py's TestChain.env() still speaks to the
    status service of old: STATUS_CHAIN_CONFIRMATIONS, which the minter ignores (it would wait for its default of
    2 confirmations, and anvil mines only when sent a transaction: the last mints would never be `minted`). So
    STATUS_CHAIN_X becomes MINTER_CHAIN_X; MINTPIPE_CHAIN_* and MINTER_* pass as they are; nothing else does."""
    env: dict[str, str] = {}
    for key, value in chain_env.items():
        if key.startswith("STATUS_CHAIN_"):
            env.setdefault("MINTER_CHAIN_" + key.removeprefix("STATUS_CHAIN_"), value)
        elif key.startswith(("MINTPIPE_CHAIN_", "MINTER_")):
            env[key] = value
    return env


def log_events(path: Path, event: str) -> list[dict]:
    """The JSON log lines of `path` whose event is `event`, in order, each with `at` (its timestamp, epoch)."""
    found = []
    if not path.exists():
        return found
    for line in path.read_text(errors="replace").splitlines():
        if f'"{event}"' not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == event:
            record["at"] = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
            found.append(record)
    return found


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

    def events(self, event: str) -> list[dict]:
        return log_events(self.log_path, event)

    def live_environ(self) -> dict[str, str]:
        """The running process's own environment (/proc/<pid>/environ: `ip netns exec` execs in place, so the
        pid is the service's), not just what the harness meant to give it."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} is not running"
        raw = Path(f"/proc/{self.process.pid}/environ").read_bytes()
        return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@dataclass
class System:
    services: dict[str, Service]
    killed: list[str] = field(default_factory=list)

    @property
    def status(self) -> list[Service]:
        return [s for n, s in self.services.items() if n.startswith("status-")]

    @property
    def minters(self) -> list[Service]:
        return [s for n, s in self.services.items() if n.startswith("minter-")]

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
                 if not k.startswith(("MINTPIPE_", "STATUS_", "GATEWAY_", "RENDERER_", "PINNER_", "MINTER_", "AWS_",
                                      "PINATA_"))}
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
                     minter_hosts: tuple[str, ...] = ("app", "mint"), status_env: dict[str, str] | None = None,
                     minter_env: dict[str, str] | None = None) -> Iterator[System]:
    """`minter_hosts`: one minter replica on each (ignored without deps.chain_env); a host named here must be one of
    `net`'s. `minter_env` goes to every minter (MINTER_CHAIN_POLL_SECONDS, relay caps, ...)."""
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
    minter_ports = [(net[h], free_port()) for h in minter_hosts] if deps.chain_env else []
    # Previews go from app to the renderers through the machine (no route between namespaces otherwise).
    preview_targets = [net.expose(app, port, render.address) for port in renderer_ports]
    # So do MinterService calls to a minter on another host; one on `app` is reached on app's own address.
    minter_targets = [(host.bind, port) if host is app else net.expose(app, port, host.address)
                      for host, port in minter_ports]
    add("gateway", app, "gateway", {
        "GATEWAY_GRPC_HOST": app.bind, "GATEWAY_GRPC_PORT": str(gateway_port), "GATEWAY_METRICS_PORT": "0",
        # Both replicas, first reachable first: the gateway outlives either.
        "GATEWAY_STATUS_TARGET": "ipv4:" + ",".join(f"{app.bind}:{g}" for g, _ in status_ports)}, gateway_port)
    # Status holds no key and speaks to no chain node: it reaches the minters (round robin over every one).
    chain = {"STATUS_MINTER_TARGET": "ipv4:" + ",".join(f"{a}:{p}" for a, p in minter_targets)} \
        if minter_targets else {}
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
    minter_chain = minter_chain_env(deps.chain_env)
    for i, (host, port) in enumerate(minter_ports):
        # Each minter reaches RabbitMQ, PostgreSQL (the same database: the relays' nonce fence is shared) and the
        # chain node through its own host's forwarders.
        add(f"minter-{i}", host, "minter", {
            **minter_chain, "MINTPIPE_CHAIN_RPC_URL": net.url(host, minter_chain["MINTPIPE_CHAIN_RPC_URL"]),
            "MINTER_GRPC_HOST": host.bind, "MINTER_GRPC_PORT": str(port),
            "MINTER_METRICS_HOST": "127.0.0.1", "MINTER_METRICS_PORT": "0", **(minter_env or {})}, port)

    for name, service in services.items():
        if not name.startswith("minter-"):
            keys = [k for k in KEY_VARIABLES if k in service.env]
            assert not keys, f"{name} would be given {keys}: only the minters hold the chain's keys"

    system = System(services)
    try:
        # status-0 first, with the minters only (its /healthz needs a minter to answer): it applies the migrations
        # and takes the leader lock, so killing it later also proves the takeover. The minters' migrations wait
        # on the same advisory lock.
        first = ["status-0", *(n for n in services if n.startswith("minter-"))]
        for name in first:
            services[name].start()
        system.wait_healthy(first)
        for name, service in services.items():
            if name not in first:
                service.start()
        system.wait_healthy([n for n in services if n not in first])
        yield system
    finally:
        system.stop()
