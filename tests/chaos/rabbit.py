"""A RabbitMQ node of the chaos tests' own: its own node name, AMQP and distribution ports, cookie, config,
plugins file and data/log folders under the test's tmp dir, so the tests may SIGKILL and restart it without
touching the system node (rabbit@localhost on 5672) that other test runs share.

We call the scripts in /usr/lib/rabbitmq/bin directly: the /usr/sbin wrappers `su` to the rabbitmq user,
which drops our environment (and with it the node name, ports and folders).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path("/usr/lib/rabbitmq/bin")

# Global counters of the node (they restart from 0 with the node, so we read them before every kill).
_COUNTERS = (
    "C = rabbit_global_counters:overview(), "
    "Q = maps:get([{protocol,amqp091},{queue_type,rabbit_quorum_queue}], C), "
    "X = maps:get([{queue_type,rabbit_quorum_queue},{dead_letter_strategy,at_most_once}], C), "
    "[maps:get(messages_redelivered_total, Q), maps:get(messages_delivered_total, Q), "
    "maps:get(messages_dead_lettered_expired_total, X), maps:get(messages_dead_lettered_delivery_limit_total, X)]."
)
COUNTER_NAMES = ("redelivered", "delivered", "retry_tier_expired", "delivery_limit_dead_lettered")


def available() -> bool:
    return (SCRIPTS / "rabbitmq-server").exists() and (SCRIPTS / "rabbitmqctl").exists()


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports() -> tuple[int, int]:
    """(amqp, distribution). The CLI tools listen on distribution + 10000..10010, so those must be free too;
    35672-35682 belong to the system node's CLI (25672 + 10000), hence distribution ports below 25000."""
    rng = random.Random()
    for _ in range(200):
        dist = rng.randrange(21000, 24990)
        amqp = rng.randrange(26000, 29990)
        if all(_free(p) for p in (amqp, dist, *range(dist + 10000, dist + 10011))):
            return amqp, dist
    raise RuntimeError("no free ports for the chaos RabbitMQ node")


@dataclass
class RabbitNode:
    base: Path
    name: str = field(default_factory=lambda: f"mintpipe-chaos-{uuid.uuid4().hex[:8]}@localhost")
    amqp_port: int = 0
    dist_port: int = 0
    process: subprocess.Popen | None = None
    starts: int = 0
    kills: int = 0
    counted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))

    def __post_init__(self) -> None:
        if not self.amqp_port:
            self.amqp_port, self.dist_port = _pick_ports()
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")  # instead of /etc/rabbitmq/rabbitmq-env.conf

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.base),  # our own Erlang cookie, not the system node's
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            # The CLI's own distribution ports: the ones picked free for this node. Left alone, rabbitmqctl takes
            # 35672-35682 (the system node's), and while eleven CLI calls to the system node hang there, every
            # call to this node fails with `nodistribution` too.
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.dist_port + 10000),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.dist_port + 10010),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPTS / "rabbitmqctl"), "-q", "-n", self.name, *args], env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, timeout: float = 90) -> float:
        """Start the node and wait until it accepts AMQP connections; returns the seconds it took."""
        began = time.monotonic()
        out = open(self.base / f"server-{self.starts}.out", "wb")  # the child inherits it
        # Its own session: a SIGKILL of the process group takes beam and its helpers, nothing else.
        self.process = subprocess.Popen([str(SCRIPTS / "rabbitmq-server")], env=self.env(), stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True, cwd=self.base)
        out.close()
        self.starts += 1
        deadline = began + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited {self.process.returncode}; see {out.name}")
            if self.ctl("await_startup", timeout=30).returncode == 0 and not _free(self.amqp_port):
                return time.monotonic() - began
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not up in {timeout:.0f}s; see {out.name}")
            time.sleep(0.5)

    def read_counters(self) -> dict[str, int]:
        """The node's counters since it started (zeros if it cannot answer)."""
        done = self.ctl("eval", _COUNTERS, timeout=30)
        values = [int(v) for v in re.findall(r"\d+", done.stdout)] if done.returncode == 0 else []
        return dict(zip(COUNTER_NAMES, values, strict=True)) if len(values) == len(COUNTER_NAMES) else {}

    def totals(self) -> dict[str, int]:
        """Counters over every life of the node (the ones banked before each kill plus the current ones)."""
        now = self.read_counters()
        return {k: self.counted[k] + now.get(k, 0) for k in COUNTER_NAMES}

    def bank_counters(self) -> None:
        for key, value in self.read_counters().items():
            self.counted[key] += value

    def kill(self) -> None:
        """SIGKILL the whole node (no clean shutdown): what a crashed or OOM-killed broker looks like."""
        self.bank_counters()
        self._killpg(signal.SIGKILL)
        self.kills += 1

    def _killpg(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the node for good (cleanly if it answers, else by force) and make sure nothing is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.ctl("stop", timeout=60)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of its process group (erl_child_setup, inet_gethost) goes too.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait(timeout=30)
        self.process = None

    def remove(self) -> None:
        shutil.rmtree(self.base / "mnesia", ignore_errors=True)
