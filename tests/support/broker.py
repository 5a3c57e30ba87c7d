"""Test helpers that look at the broker the way an operator would."""

from __future__ import annotations

import asyncio
import threading
import time

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from mintpipe.messaging.broker import Broker, Topology
from mintpipe.messaging.broker import delete_topology as drop_topology


class QueueProbe:
    """Reads a queue the way an operator would: message counts and basic.get."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def channel(self) -> aio_pika.abc.AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.broker.channel(100)
        return self._channel

    async def ready(self, queue: str) -> int:
        # robust=False: a robust channel answers repeated passive declares from its cache (stale counts).
        declared = await (await self.channel()).declare_queue(queue, passive=True, robust=False)
        return declared.declaration_result.message_count or 0

    async def take(self, queue: str, timeout: float = 30.0) -> AbstractIncomingMessage:
        q = await (await self.channel()).get_queue(queue, ensure=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = await q.get(no_ack=True, fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.05)
        raise AssertionError(f"nothing arrived on {queue} within {timeout}s")

    async def drain(self, queue: str) -> list[AbstractIncomingMessage]:
        q = await (await self.channel()).get_queue(queue, ensure=False)
        out = []
        while (message := await q.get(no_ack=True, fail=False)) is not None:
            out.append(message)
        return out


async def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


async def delete_topology(broker: Broker) -> None:
    """Drop every queue and exchange of the broker's topology (a test's own prefix)."""
    channel = await broker.channel(1)
    await drop_topology(channel, broker.topology)
    await channel.close()


def drop_prefix(amqp_url: str, prefix: str, timeout: float = 60.0) -> None:
    """Delete a launched system's queues and exchanges (its own prefix) once it has stopped: each system leaves
    ~40 quorum queues otherwise, and a test run's hundreds exhaust the node's file handles. Runs on a thread of
    its own, so a sync test and an async one (with a running loop) can both call it; raises if it could not."""
    failure: list[BaseException] = []

    async def drop() -> None:
        connection = await aio_pika.connect(amqp_url, timeout=10)
        async with connection:
            await drop_topology(await connection.channel(), Topology(prefix))

    def run() -> None:
        try:
            asyncio.run(asyncio.wait_for(drop(), timeout))
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name=f"drop-{prefix}")
    worker.start()
    worker.join()
    if failure:
        raise AssertionError(f"could not delete the broker topology of prefix {prefix}: {failure[0]!r}")
