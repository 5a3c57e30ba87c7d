"""gRPC health follows the broker: a real status service process reaches RabbitMQ through a TCP hop the test
can cut (what a stopped broker or a dead network looks like from the service) and open again. Health goes
NOT_SERVING while the broker is away and SERVING once the connection is back; reflection answers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import free_port
from tests.integration.test_admin import CuttableLink
from tests.integration.test_drain import health
from tests.integration.test_drain_services import not_serving, serving
from tests.support.broker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


class ReopenableLink(CuttableLink):
    async def start(self) -> str:
        url = await super().start()
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        return url

    async def reopen(self) -> None:
        self.writers = []
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)


def start_status(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "status"], env=env, stdout=out, stderr=subprocess.STDOUT)


async def services(port: int) -> set[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask():
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for answer in stub.ServerReflectionInfo(ask(), timeout=5):
            return {s.name for s in answer.list_services_response.service}
    return set()


async def test_health_goes_not_serving_while_the_broker_is_away_and_back_after(rabbit_url, broker_prefix, broker,
                                                                               tmp_path):
    link = ReopenableLink(rabbit_url)
    url = await link.start()
    grpc_port = free_port()
    env = {**os.environ, "MINTPIPE_AMQP_URL": url, "MINTPIPE_BROKER_PREFIX": broker_prefix,
           "MINTPIPE_DATA_DIR": str(tmp_path), "STATUS_GRPC_PORT": str(grpc_port),
           "STATUS_HTTP_PORT": str(free_port()), "STATUS_GATEWAY_TARGET": "127.0.0.1:9"}
    log = tmp_path / "status.log"
    status = start_status(env, log)
    try:
        await wait_for(lambda: serving(grpc_port), timeout=30)
        assert {"grpc.health.v1.Health", "mintpipe.v1.StatusService"} <= await services(grpc_port)
        # SERVING is the last step of start-up: by then the bridge listens and the consumers and the dead-letter
        # watch are set up, so cutting the broker now degrades the service instead of stopping its start.
        started = log.read_bytes()
        assert b"Uvicorn running" in started and b"consuming" in started, \
            f"SERVING before the bridge and the events consumer were up:\n{started.decode(errors='replace')[-3000:]}"

        await link.cut()
        assert await wait_for(lambda: not_serving(grpc_port), timeout=15), "SERVING without a broker"
        await link.reopen()
        try:
            await wait_for(lambda: serving(grpc_port), timeout=40)
        except AssertionError:
            raise AssertionError(f"not SERVING again once the broker is back (process exit code: {status.poll()}, "
                                 f"health: {await health(grpc_port)}):\n{log.read_text()[-5000:]}") from None
        assert "mintpipe.v1.StatusService" in await services(grpc_port)
        status.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(status.wait, 60) == 0
    finally:
        if status.poll() is None:
            status.kill()
        await link.cut()
