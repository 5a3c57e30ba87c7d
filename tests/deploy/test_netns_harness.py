"""The multi-host harness itself (tests/support/netns.py): each namespace sees only its loopback and the
machine's forwarders; RabbitMQ answers through a forwarder and not on the namespace's own 127.0.0.1; the other
hosts are out of reach; everything the run made is gone afterwards; a refusal is said, never silent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.netns import IP, hosts

pytestmark = [pytest.mark.multihost, pytest.mark.timeout(120)]

# Opens a TCP connection, sends the AMQP 0-9-1 protocol header and prints what came back (the broker answers
# with a Connection.Start frame, type 1, which names the AMQP version 0-9) or the connection error.
PROBE = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.sendall(b"AMQP\\x00\\x00\\x09\\x01")
    s.settimeout(5)
    print("answer", s.recv(7).hex())
except OSError as exc:
    print("refused", type(exc).__name__)
"""


def probe(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_namespaces_reach_rabbitmq_only_through_the_forwarder_and_not_each_other() -> None:
    with hosts(["app", "render"]) as net:
        if not net.isolated:
            pytest.fail(f"network namespaces refused on this machine: {net.refused}")
        app, render = net["app"], net["render"]
        address, port = net.expose(render, 5672)
        assert address == render.machine_address and address != "127.0.0.1"
        answer = probe(render.command([sys.executable, "-c", PROBE, address, str(port)]))
        assert answer.startswith("answer 01"), answer  # a method frame: RabbitMQ spoke AMQP back
        # The namespace's own loopback has no broker, and app's forwarder address is not routed from render.
        assert probe(render.command([sys.executable, "-c", PROBE, "127.0.0.1", "5672"])).startswith("refused")
        app_address, app_port = net.expose(app, 5672)
        assert probe(render.command([sys.executable, "-c", PROBE, app_address, str(app_port)])).startswith("refused")
        assert probe(render.command([sys.executable, "-c", PROBE, app.address, "22"])).startswith("refused")
        names = [h.netns for h in net.hosts.values()]
        assert net.forwarder is not None and net.forwarder.connections >= 1
    listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run([IP, "-br", "link"], capture_output=True, text=True).stdout
    tag = names[0].split("-")[0]
    assert tag not in listed and tag not in links, (listed, links)


def test_the_loopback_fallback_says_so() -> None:
    with pytest.warns(UserWarning, match="NETWORK NAMESPACES REFUSED"), hosts(["a", "b"], force_loopback=True) as net:
        assert not net.isolated and net["a"].address == "127.0.0.1"
        assert net.expose(net["b"], 5672) == ("127.0.0.1", 5672)
        assert net["a"].command(["true"]) == ["true"]
