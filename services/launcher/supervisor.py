"""Starts every service as its own process, waits until each reports healthy, restarts one that dies,
and stops them all in drain order (intake first, the job store last)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mintpipe.runtime.log import get_logger

log = get_logger("launcher")

MAX_RESTARTS_PER_MINUTE = 5


@dataclass
class Layout:
    """Where everything listens, derived from two numbers so several systems can run side by side."""

    data_dir: Path
    http_port: int = 8080
    port_base: int = 50050
    renderers: int = 1
    pinners: int = 1
    status_replicas: int = 1  # bridges at http_port, http_port + 1, ... (several need PostgreSQL: issue 11)
    minters: int = 1  # the chain stage; none without a chain

    @property
    def gateway_port(self) -> int:
        return self.port_base + 1

    @property
    def status_port(self) -> int:
        return self.port_base + 2

    def status_replica_port(self, i: int) -> int:
        """gRPC port of status replica i (the first keeps status_port)."""
        return self.status_port if i == 0 else self.port_base + 500 + i

    def status_http_port(self, i: int) -> int:
        return self.http_port + i

    def renderer_port(self, i: int) -> int:
        return self.port_base + 100 + i

    def pinner_port(self, i: int) -> int:
        return self.port_base + 200 + i

    def minter_port(self, i: int) -> int:
        return self.port_base + 600 + i

    def minter_metrics_port(self, i: int) -> int:
        return self.port_base + 700 + i

    # Prometheus /metrics of the gateway and of each replica (status: the bridge's /metrics).
    @property
    def gateway_metrics_port(self) -> int:
        return self.port_base + 3

    def renderer_metrics_port(self, i: int) -> int:
        return self.port_base + 300 + i

    def pinner_metrics_port(self, i: int) -> int:
        return self.port_base + 400 + i

    def metrics_urls(self) -> dict[str, str]:
        urls = {"status": f"{self.http_url}/metrics",
                "gateway": f"http://127.0.0.1:{self.gateway_metrics_port}/metrics"}
        urls.update({f"renderer-{i}": f"http://127.0.0.1:{self.renderer_metrics_port(i)}/metrics"
                     for i in range(self.renderers)})
        urls.update({f"pinner-{i}": f"http://127.0.0.1:{self.pinner_metrics_port(i)}/metrics"
                     for i in range(self.pinners)})
        urls.update({f"minter-{i}": f"http://127.0.0.1:{self.minter_metrics_port(i)}/metrics"
                     for i in range(self.minters)})
        return urls

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass
class ServiceSpec:
    name: str
    module: str
    env: dict[str, str]
    grpc_port: int
    group: int  # stop order: lower groups are drained first
    http_health: str | None = None


def build_specs(layout: Layout) -> list[ServiceSpec]:
    data = str(layout.data_dir.resolve())
    gateway = f"127.0.0.1:{layout.gateway_port}"
    # The gateway reserves jobs through any status replica (pick_first: the next one when one is down).
    status = (f"127.0.0.1:{layout.status_port}" if layout.status_replicas == 1 else
              "ipv4:" + ",".join(f"127.0.0.1:{layout.status_replica_port(i)}" for i in range(layout.status_replicas)))
    # One target naming every renderer replica: the bridge balances previews over them (round_robin).
    renderers = "ipv4:" + ",".join(f"127.0.0.1:{layout.renderer_port(i)}" for i in range(layout.renderers))
    base = {"MINTPIPE_DATA_DIR": data, "PYTHONUNBUFFERED": "1"}
    # Status asks every minter replica (round_robin); relays reach the active one through the broker.
    minters = ("ipv4:" + ",".join(f"127.0.0.1:{layout.minter_port(i)}" for i in range(layout.minters))
               if layout.minters else "")
    chain_env = {"STATUS_MINTER_TARGET": minters} if minters else {}
    specs = [
        ServiceSpec("status" if i == 0 else f"status-{i}", "status",
                    {**base, "STATUS_GRPC_PORT": str(layout.status_replica_port(i)),
                     "STATUS_HTTP_PORT": str(layout.status_http_port(i)),
                     "STATUS_GATEWAY_TARGET": gateway, "STATUS_RENDERER_TARGET": renderers, **chain_env},
                    layout.status_replica_port(i), group=2,
                    http_health=f"http://127.0.0.1:{layout.status_http_port(i)}/healthz")
        for i in range(layout.status_replicas)
    ]
    specs += [
        ServiceSpec("gateway", "gateway", {**base, "GATEWAY_GRPC_PORT": str(layout.gateway_port),
                                           "GATEWAY_STATUS_TARGET": status,
                                           "GATEWAY_METRICS_PORT": str(layout.gateway_metrics_port)},
                    layout.gateway_port, group=0),
    ]
    specs += [ServiceSpec(f"renderer-{i}", "renderer",
                          {**base, "RENDERER_HEALTH_PORT": str(layout.renderer_port(i)),
                           "RENDERER_METRICS_PORT": str(layout.renderer_metrics_port(i))},
                          layout.renderer_port(i), group=1) for i in range(layout.renderers)]
    specs += [ServiceSpec(f"pinner-{i}", "pinner",
                          {**base, "PINNER_HEALTH_PORT": str(layout.pinner_port(i)),
                           "PINNER_METRICS_PORT": str(layout.pinner_metrics_port(i))},
                          layout.pinner_port(i), group=1) for i in range(layout.pinners)]
    specs += [ServiceSpec(f"minter-{i}", "minter",
                          {**base, "MINTER_GRPC_PORT": str(layout.minter_port(i)),
                           "MINTER_METRICS_PORT": str(layout.minter_metrics_port(i)),
                           "MINTPIPE_REPLICA": f"minter-{i}"},
                          layout.minter_port(i), group=1) for i in range(layout.minters)]
    return specs


@dataclass
class Child:
    spec: ServiceSpec
    process: asyncio.subprocess.Process | None = None
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, specs: list[ServiceSpec], log_dir: Path | None, grace: float = 20.0) -> None:
        self.children = [Child(s) for s in specs]
        self.log_dir = log_dir
        self.grace = grace
        self.stopping = False
        self.failed = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    async def _spawn(self, child: Child) -> None:
        env = {**os.environ, **child.spec.env, "MINTPIPE_REPLICA": child.spec.name}
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{child.spec.name}.log", "ab")  # noqa: ASYNC230 - local file, once per start
        child.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", child.spec.module, env=env, stdout=out, stderr=out or None,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it decides the order
        )
        if out is not None:
            out.close()
        log.info("started", service=child.spec.name, pid=child.process.pid)

    async def start(self, timeout: float = 90.0) -> None:
        for child in self.children:
            await self._spawn(child)
            self._watchers.append(asyncio.create_task(self._watch(child)))
        await self.wait_healthy(timeout)

    async def _watch(self, child: Child) -> None:
        while not self.stopping:
            assert child.process is not None
            code = await child.process.wait()
            if self.stopping:
                return
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < 60] + [now]
            if len(child.restarts) > MAX_RESTARTS_PER_MINUTE:
                log.error("service keeps dying; giving up", service=child.spec.name, exit_code=code)
                self.failed.set()
                return
            log.warning("service exited; restarting", service=child.spec.name, exit_code=code)
            await asyncio.sleep(1.0)
            if not self.stopping:
                await self._spawn(child)

    async def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.children)
        async with httpx.AsyncClient(timeout=2.0) as http:
            while pending:
                if self.failed.is_set():
                    raise RuntimeError("a service failed to start; see its log")
                if time.monotonic() > deadline:
                    names = ", ".join(c.spec.name for c in pending)
                    raise TimeoutError(f"not healthy after {timeout:.0f}s: {names}")
                still = []
                for child in pending:
                    if not await self._healthy(child.spec, http):
                        still.append(child)
                pending = still
                if pending:
                    await asyncio.sleep(0.3)
        log.info("all services healthy", count=len(self.children))

    @staticmethod
    async def _healthy(spec: ServiceSpec, http: httpx.AsyncClient) -> bool:
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{spec.grpc_port}") as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return False
            if spec.http_health:
                return (await http.get(spec.http_health)).status_code == 200
            return True
        except (grpc.aio.AioRpcError, httpx.HTTPError):
            return False

    async def stop(self) -> None:
        """SIGTERM group by group (gateway, then workers, then status), SIGKILL after the grace."""
        self.stopping = True
        for group in sorted({c.spec.group for c in self.children}):
            members = [c for c in self.children if c.spec.group == group and c.process
                       and c.process.returncode is None]
            for child in members:
                child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            await asyncio.gather(*(self._reap(c) for c in members))
        for task in self._watchers:
            task.cancel()
        log.info("all services stopped")

    async def _reap(self, child: Child) -> None:
        assert child.process is not None
        try:
            await asyncio.wait_for(child.process.wait(), self.grace + 5)
        except TimeoutError:
            log.warning("did not stop in time; killing", service=child.spec.name)
            child.process.kill()
            await child.process.wait()
