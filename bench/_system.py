"""The whole system for a benchmark: `mintpipe up` on a queue prefix, ports and data folder of its own, stopped
with SIGTERM and its queues and exchanges deleted afterwards, so nothing is left in the broker."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aio_pika

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "libs"), str(ROOT / "services")]

from mintpipe.messaging.broker import Topology, delete_topology  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_base() -> int:
    """A base with the launcher's gRPC and metrics ports above it free (base+1..3, +100.., +200.., +300.., +400..)."""
    for _ in range(50):
        base = random.randrange(20000, 45000)
        ports = (base + 1, base + 2, base + 3, *(base + k + i for k in (100, 200, 300, 400) for i in range(10)))
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise SystemExit("no free port range")


def drop_prefixes(amqp_url: str, *prefixes: str, timeout: float = 60.0) -> None:
    """Deletes the prefixes' queues and exchanges; a broker that does not answer within `timeout` gets a warning
    naming what was left behind, rather than a benchmark that never ends."""
    async def drop() -> None:
        connection = await aio_pika.connect(amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel()
            for prefix in prefixes:
                await delete_topology(channel, Topology(prefix))

    async def bounded() -> None:
        await asyncio.wait_for(drop(), timeout)

    try:
        asyncio.run(bounded())
    except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
        print(f"warning: could not delete broker prefixes {', '.join(prefixes)} ({type(exc).__name__}: {exc}); "
              "delete them by hand", file=sys.stderr)


@contextmanager
def launched(amqp_url: str, renderers: int = 1, pinners: int = 1,
             env: dict[str, str] | None = None, started: dict | None = None, root: Path = ROOT) -> Iterator[str]:
    """Yields the HTTP base URL. `env` may move a service to another prefix (<SERVICE>_BROKER_PREFIX): that
    prefix is deleted afterwards too. `started`, if given, receives the launcher's Popen as "launcher".
    `root`: another checkout of mintpipe to run (a baseline for side-by-side figures), with this venv."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="mintpipe-bench-system-") as tmp:
        data, http_port = Path(tmp), free_port()
        full_env = {**os.environ, "MINTPIPE_AMQP_URL": amqp_url, "MINTPIPE_BROKER_PREFIX": prefix,
                    "MINTPIPE_DATA_DIR": str(data), "MINTPIPE_HTTP_PORT": str(http_port),
                    "MINTPIPE_PORT_BASE": str(free_port_base()), "MINTPIPE_LOG_LEVEL": "WARNING", **(env or {})}
        if Path(root).resolve() != ROOT:
            full_env["PYTHONPATH"] = os.pathsep.join(str(Path(root) / part) for part in ("libs", "services"))
        log_path = data / "launcher.log"
        with open(log_path, "wb") as log:
            launcher = subprocess.Popen(
                [sys.executable, "-m", "launcher", "up", "--renderers", str(renderers), "--pinners", str(pinners)],
                env=full_env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
        if started is not None:
            started["launcher"] = launcher
        try:
            deadline = time.monotonic() + 90
            while b"mintpipe is up" not in log_path.read_bytes():
                if launcher.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the system did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{http_port}"
        finally:
            launcher.send_signal(signal.SIGTERM)
            try:
                launcher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                launcher.kill()
            moved = {v for k, v in (env or {}).items() if k.endswith("_BROKER_PREFIX")}
            drop_prefixes(amqp_url, prefix, *moved)


def service_pids(launcher_pid: int) -> dict[str, int]:
    """The launcher's children by service (`python -m status` -> "status"), from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == launcher_pid and len(args) > 2 and args[1] == b"-m":
            found[args[2].decode()] = int(entry.name)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
