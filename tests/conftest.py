"""Shared fixtures. Each test session gets its own RabbitMQ vhost (deleted afterwards), each test its own
queue prefix and data folder, so nothing leaks between runs or into a running system."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.chain import TestChain, running_chain

# PostgreSQL fixtures (pg_database, pg_dsn, db_url: both engines) and the SeaweedFS fixtures (seaweed, s3_bucket,
# s3_url, s3_env, s3_artifacts, s3_ipfs: see tests/support/seaweed.py), for every test package.
pytest_plugins = ["tests.support.postgres", "tests.support.seaweed", "tests.support.logs"]

ROOT = Path(__file__).resolve().parents[1]
RABBIT_HOST = os.environ.get("MINTPIPE_TEST_RABBIT_HOST", "127.0.0.1:5672")


def _rabbitmqctl(*args: str, timeout: float = 30) -> bool:
    try:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=timeout)
        return True
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError):
        return False


@pytest.fixture(scope="session")
def rabbit_url() -> Iterator[str]:
    """amqp URL of a fresh vhost on the local RabbitMQ, removed when the session ends.

    Every test also uses its own queue prefix, so when the vhost cannot be made (rabbitmqctl missing, or the
    CLI's Erlang distribution not answering) the tests fall back to the default vhost and stay isolated by
    prefix; they clean up their own queues either way.
    """
    override = os.environ.get("MINTPIPE_TEST_AMQP_URL")
    if override:
        yield override
        return
    vhost = f"mintpipe-test-{uuid.uuid4().hex[:12]}"
    made = shutil.which("rabbitmqctl") is not None and _rabbitmqctl("add_vhost", vhost)
    if made and _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"):
        yield f"amqp://guest:guest@{RABBIT_HOST}/{quote(vhost, safe='')}"
        _rabbitmqctl("delete_vhost", vhost, timeout=60)
        return
    if made:
        _rabbitmqctl("delete_vhost", vhost)
    warnings.warn("could not create a RabbitMQ vhost for the tests; isolating by queue prefix on '/'", stacklevel=1)
    yield f"amqp://guest:guest@{RABBIT_HOST}/"


@pytest.fixture
def broker_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_base(span: int = 300) -> int:
    """A base port whose derived ports are free (gRPC and metrics ports of a launched system)."""
    import random

    for _ in range(50):
        base = random.randrange(20000, 45000)
        ok = True
        for port in (base + 1, base + 2, base + 3, *range(base + 100, base + 110), *range(base + 200, base + 210),
                     *range(base + 300, base + 310), *range(base + 400, base + 410)):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestChain]:
    """anvil on a free port with the collection deployed (tests/support/chain.py), one per test module."""
    with running_chain(tmp_path_factory.mktemp("anvil")) as running:
        yield running
