"""`mintpipe health`, the containers' healthcheck, run as the command Docker runs, against a real gRPC server with
the services' own health plumbing (GrpcServer): its exit code and its one line follow what the server says."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from mintpipe.rpc.server import GrpcServer
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
MINTPIPE = str(Path(sys.executable).with_name("mintpipe"))


async def health(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(MINTPIPE, "health", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def wait_exit(code: int, *args: str) -> tuple[str, str]:
    """The probe loop reports a change within its interval: ask until the command says so."""
    deadline = time.monotonic() + 10
    while True:
        got, out, err = await health(*args)
        if got == code or time.monotonic() > deadline:
            assert got == code, (got, out, err)
            return out, err
        await asyncio.sleep(0.2)


async def test_exit_code_and_reason_follow_the_servers_health():
    ok = {"broker": True}
    port = free_port()
    server = GrpcServer("127.0.0.1", port, ["mintpipe.v1.Gateway"])
    await server.start({"broker": lambda: ok["broker"]}, interval=0.1)
    address = f"127.0.0.1:{port}"
    try:
        out, err = await wait_exit(0, address)
        assert out.strip() == f"{address}: SERVING" and err == ""
        out, _ = await wait_exit(0, address, "--service", "mintpipe.v1.Gateway")

        ok["broker"] = False  # what a lost broker looks like to the probe loop
        _, err = await wait_exit(1, address)
        assert err.strip() == f"{address}: NOT_SERVING", err
        ok["broker"] = True
        await wait_exit(0, address)

        code, _, err = await health(address, "--service", "mintpipe.v1.Nothing")
        assert code == 1 and err.strip() == f"{address}: service 'mintpipe.v1.Nothing' is not known to its health check"

        await server.begin_shutdown()  # a drain: NOT_SERVING at once, while the port still answers
        code, _, err = await health(address)
        assert (code, err.strip()) == (1, f"{address}: NOT_SERVING")
    finally:
        await server.stop(0)

    code, out, err = await health(address, "--timeout", "0.5")
    assert code == 3 and out == "", (code, out, err)
    assert err.strip() == f"{address}: no gRPC answer within 0.5s (deadline_exceeded)", err


@pytest.mark.parametrize("args, reason", [
    (["localhost"], "address: expected HOST:PORT, got 'localhost'"),
    (["127.0.0.1:99999"], "address: expected HOST:PORT, got '127.0.0.1:99999'"),
    (["127.0.0.1:50051", "--timeout", "0"], "--timeout: expected 0-600 seconds, got 0"),
])
async def test_bad_input_names_the_field(args, reason):
    code, out, err = await health(*args)
    assert (code, out) == (2, "") and err.strip() == f"mintpipe health: {reason}"
