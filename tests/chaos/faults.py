"""Faults injected straight onto the broker: every message published twice, and a poison message."""

from __future__ import annotations

from collections import Counter

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from mintpipe.messaging.broker import PROTOBUF, REASON_HEADER, Topology

DUPLICATE_HEADER = "x-chaos-duplicate"
POISON = b"\xff\xff\xff\xff chaos poison: not a protobuf message"


class Duplicator:
    """A tap bound to the jobs and events exchanges: every render job, pin job and event the services
    publish is published once more, to the same exchange with the same routing key, body and message id.
    So each consumer gets every message twice, sometimes at the same moment on two replicas. The copies
    carry a header so the tap does not copy its own copies."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.url = url
        self.topology = topology
        self.copies: Counter[str] = Counter()
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self.url)
        consume = await self._connection.channel()
        publish = await self._connection.channel(publisher_confirms=True)
        exchanges = {name: await publish.get_exchange(name, ensure=False)
                     for name in (self.topology.jobs_exchange, self.topology.events_exchange)}
        tap = await consume.declare_queue(f"{self.topology.prefix}.chaos.tap", exclusive=True, auto_delete=True)
        await tap.bind(self.topology.jobs_exchange, "render")
        await tap.bind(self.topology.jobs_exchange, "pin")
        await tap.bind(self.topology.events_exchange, "job.#")

        async def copy(message: AbstractIncomingMessage) -> None:
            headers = dict(message.headers or {})
            if not headers.get(DUPLICATE_HEADER):
                headers[DUPLICATE_HEADER] = 1
                await exchanges[message.exchange].publish(aio_pika.Message(
                    message.body, headers=headers, content_type=message.content_type, type=message.type,
                    message_id=message.message_id, app_id=message.app_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT), message.routing_key, mandatory=True)
                kind = message.routing_key if message.exchange == self.topology.jobs_exchange else "events"
                self.copies[kind] += 1
            await message.ack()  # only after the copy was confirmed

        await tap.consume(copy)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


async def publish_poison(url: str, queue: str) -> None:
    """Garbage that claims to be protobuf, straight onto a work queue."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(aio_pika.Message(
            POISON, content_type=PROTOBUF, message_id="chaos-poison",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), queue, mandatory=True)


async def dead_letters(url: str, topology: Topology) -> dict[str, list[tuple[bytes, str]]]:
    """Every work queue's dead letters as (body, reason), read with get + reject(requeue) so they stay."""
    out: dict[str, list[tuple[bytes, str]]] = {}
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        for queue in topology.work_queues:
            dead = await channel.get_queue(topology.dead_queue(queue), ensure=False)
            held = []
            while (message := await dead.get(no_ack=False, fail=False)) is not None:
                held.append(message)
            out[queue] = [(m.body, str((m.headers or {}).get(REASON_HEADER, ""))) for m in held]
            for message in held:
                await message.nack(requeue=True)
    return out
