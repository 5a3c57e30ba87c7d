"""Several "hosts" on one machine: a network namespace per host, joined to the machine by a veth pair, and
nothing else (each namespace has only its loopback and its end of the pair), for tests that must prove a
deployment shares no disk and no loopback between hosts.

    with hosts(["app", "render", "pin"]) as net:
        addr, port = net.expose(net["render"], 5672)     # the machine's 127.0.0.1:5672, as seen from `render`
        net["app"].command(["python", "-m", "status"])  # argv that runs inside the namespace
        net["app"].address                               # where the machine (and the test) reaches that host
        net.isolated                                     # False: the loopback fallback below

The machine's services (RabbitMQ, PostgreSQL, ...) listen on 127.0.0.1 only and must not be reconfigured, so
`expose` starts a small TCP forwarder on the machine's end of the host's veth, relaying to 127.0.0.1:PORT.

When namespaces are refused (no CAP_SYS_ADMIN, no `ip`), `hosts` says so on stderr and as a warning, and
gives the same topology on loopback: every host at 127.0.0.1, `expose` the port itself, commands unchanged.
Callers keep their distinct data folders, so the fallback still proves no shared path (not the network).

MINTPIPE_TEST_NETNS=off forces the fallback (to try it on a machine that has namespaces).

Every namespace and veth is named after this run (`mh<6 hex>`), and removed on the way out, failure or not.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

IP = "/usr/sbin/ip"


class NamespacesRefused(RuntimeError):
    pass


@dataclass
class Host:
    name: str
    netns: str | None  # None: the loopback fallback
    address: str  # where the machine reaches this host's listeners
    machine_address: str  # where this host reaches the machine's forwarders

    @property
    def bind(self) -> str:
        """The address a service on this host listens on to be reached from the machine."""
        return self.address

    def command(self, argv: list[str]) -> list[str]:
        # `ip netns exec` execs the command in place (no extra fork), so the Popen pid is the service's pid.
        return [IP, "netns", "exec", self.netns, *argv] if self.netns else list(argv)


class Forwarder:
    """TCP relays on an event loop of their own thread (the tests' own loops come and go)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="netns-forwarder", daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []
        self._conns: set[asyncio.StreamWriter] = set()
        self.connections = 0  # relayed connections, for the report

    def add(self, listen_host: str, target_host: str, target_port: int) -> int:
        """Listen on listen_host (a free port) and relay to target; returns the port."""
        async def start() -> asyncio.Server:
            return await asyncio.start_server(self._relay(target_host, target_port), listen_host, 0)

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    def _relay(self, host: str, port: int):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                writer.close()
                return
            self._conns.update((writer, up_writer))
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                for w in (writer, up_writer):
                    self._conns.discard(w)
                    w.close()

        return handle

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # Half-close so the other side sees EOF (AMQP and PostgreSQL close their own way afterwards).
            with suppress(OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self._conns):
                writer.close()
            for server in self._servers:
                with suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 5)

        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@dataclass
class Network:
    hosts: dict[str, Host]
    isolated: bool
    refused: str | None = None  # why namespaces could not be used (fallback only)
    forwarder: Forwarder | None = None
    _exposed: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def expose(self, host: Host, port: int, target: str = "127.0.0.1") -> tuple[str, int]:
        """(address, port) at which `host` reaches target:port of the machine."""
        if not self.isolated or self.forwarder is None:
            return target, port
        key = (host.name, target, port)
        if key not in self._exposed:
            self._exposed[key] = self.forwarder.add(host.machine_address, target, port)
        return host.machine_address, self._exposed[key]

    def url(self, host: Host, url: str) -> str:
        """`url` (scheme://[user@]127.0.0.1:PORT/...) rewritten to what `host` uses to reach it."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        address, port = self.expose(host, parts.port, parts.hostname or "127.0.0.1")
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{address}:{port}" if userinfo else f"{address}:{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _ip(*args: str, netns: str | None = None) -> None:
    argv = [IP, "netns", "exec", netns, IP, *args] if netns else [IP, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NamespacesRefused(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.returncode}")


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no interface or route of the machine uses (every run its own)."""
    used = subprocess.run([IP, "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used += subprocess.run([IP, "-4", "addr"], capture_output=True, text=True).stdout
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{random.randrange(64, 250)}.{random.randrange(0, 256)}.0/24")
        if f"10.{net.network_address.packed[1]}.{net.network_address.packed[2]}." not in used:
            return net
    raise NamespacesRefused("no free 10.x.y.0/24 subnet")


def _say(message: str) -> None:
    print(f"\n*** {message} ***", file=sys.stderr, flush=True)
    warnings.warn(message, stacklevel=3)


def _teardown(namespaces: list[str], links: list[str]) -> None:
    # Deleting a namespace destroys the veth end inside it and so the pair; the host ends go explicitly in case
    # a namespace was never made (a failure halfway).
    for ns in namespaces:
        subprocess.run([IP, "netns", "delete", ns], capture_output=True, timeout=30)
    for link in links:
        subprocess.run([IP, "link", "delete", link], capture_output=True, timeout=30)


@contextmanager
def hosts(names: list[str], *, force_loopback: bool = False) -> Iterator[Network]:
    tag = f"mh{uuid.uuid4().hex[:6]}"
    namespaces: list[str] = []
    links: list[str] = []
    made: dict[str, Host] = {}
    force_loopback = force_loopback or os.environ.get("MINTPIPE_TEST_NETNS") == "off"
    refused: str | None = "forced (MINTPIPE_TEST_NETNS=off or the caller)" if force_loopback else None
    if os.geteuid() != 0 and not force_loopback:
        refused = "not root (network namespaces need CAP_SYS_ADMIN)"
    elif not os.path.exists(IP) and not force_loopback:
        refused = f"{IP} not found"
    if refused is None:
        try:
            subnet = _free_subnet()
            for i, name in enumerate(names):
                # One /30 per host out of the run's /24: .4i+1 the machine's end, .4i+2 the namespace's.
                machine = str(subnet.network_address + 4 * i + 1)
                inside = str(subnet.network_address + 4 * i + 2)
                ns, outer, inner = f"{tag}-{name}", f"{tag}h{i}", f"{tag}n{i}"
                _ip("netns", "add", ns)
                namespaces.append(ns)
                _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
                links.append(outer)
                _ip("link", "set", inner, "netns", ns)
                _ip("addr", "add", f"{machine}/30", "dev", outer)
                _ip("link", "set", outer, "up")
                _ip("addr", "add", f"{inside}/30", "dev", inner, netns=ns)
                _ip("link", "set", inner, "up", netns=ns)
                _ip("link", "set", "lo", "up", netns=ns)
                made[name] = Host(name, ns, inside, machine)
        except (NamespacesRefused, OSError, subprocess.TimeoutExpired) as exc:
            _teardown(namespaces, links)
            namespaces, links, made = [], [], {}
            refused = str(exc)
    if refused is not None:
        _say(f"NETWORK NAMESPACES REFUSED ({refused}): running the multi-host topology on loopback with "
             f"distinct data folders instead; this proves no shared path, NOT network isolation")
        network = Network({n: Host(n, None, "127.0.0.1", "127.0.0.1") for n in names}, isolated=False,
                          refused=refused)
        yield network
        return
    forwarder = Forwarder()
    try:
        yield Network(made, isolated=True, forwarder=forwarder)
    finally:
        forwarder.close()
        _teardown(namespaces, links)
