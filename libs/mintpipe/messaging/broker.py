"""RabbitMQ topology and the two things every service does with it: publish with a confirm, consume
with manual acks.

Topology (every name starts with the broker prefix, so test runs and deployments never collide):
  <p>.jobs    direct exchange  "render" → <p>.render,  "pin" → <p>.pin          (quorum work queues)
  <p>.events  topic exchange   "job.#"  → <p>.status.events                     (quorum)
  <p>.jobs    direct exchange  "relay"  → <p>.minter.relay  (quorum, single active consumer: one sender)
  <p>.jobs    direct exchange  "tick"   → <p>.minter.watch  (quorum, single active consumer, holds 1 tick)
  <p>.dlx     direct exchange  "<queue>" → <queue>.dead                           (dead letters, with reasons)
  <queue>.retry.<N>s  one delay queue per tier (messages wait N s, then go back to <queue>): transient
                      failures wait there without blocking the work queue and without busy-waiting.
Every service declares the whole topology at start (idempotent), so start order never matters.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection
from google.protobuf.message import Message as ProtoMessage

from mintpipe.runtime.log import get_logger

log = get_logger("mintpipe.broker")

PROTOBUF = "application/x-protobuf"
# A message redelivered this often without an answer (a crash loop: the handler never returned) goes to
# its dead-letter queue. Handled transient failures go through the retry tiers and count in ATTEMPT_HEADER.
DELIVERY_LIMIT = 5
# The delayed-retry queues' waits, in seconds. The consumer's backoff schedule (mintpipe.messaging.consumer.RETRY_STEPS)
# waits exactly these, so the real schedule is the one computed there; the 1 s tier serves short Retry-Afters.
RETRY_TIERS = (1, 5, 15, 30, 60, 120, 240, 360, 480, 600)
ATTEMPT_HEADER = "x-mintpipe-attempt"
REASON_HEADER = "x-mintpipe-reason"


@dataclass(frozen=True)
class Topology:
    prefix: str = "mintpipe"
    # Tests run the real retry schedule scaled down in time: every retry tier waits `retry_scale` × its seconds
    # (the queue names keep the nominal seconds). Always 1 in a deployment.
    retry_scale: float = 1.0

    @property
    def jobs_exchange(self) -> str:
        return f"{self.prefix}.jobs"

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}.dlx"

    @property
    def render_queue(self) -> str:
        return f"{self.prefix}.render"

    @property
    def pin_queue(self) -> str:
        return f"{self.prefix}.pin"

    @property
    def relay_queue(self) -> str:
        """Relayed mints asked for: one minter replica at a time consumes it (single active consumer), so one
        sender signs and sends, and RabbitMQ hands the role to another replica when that one goes."""
        return f"{self.prefix}.minter.relay"

    @property
    def watch_queue(self) -> str:
        """The chain watcher's rounds: every minter replica publishes a tick each poll interval, the queue keeps
        the newest one only, and its single active consumer runs a round per tick."""
        return f"{self.prefix}.minter.watch"

    @property
    def status_queue(self) -> str:
        return f"{self.prefix}.status.events"

    @property
    def dead_watch_queue(self) -> str:
        """A copy of every dead letter of the render and pin stages, for the status service (see
        status.workers.dead_letters); the originals stay in `<queue>.dead` for operators."""
        return f"{self.prefix}.status.dead-letters"

    @staticmethod
    def dead_queue(queue: str) -> str:
        return f"{queue}.dead"

    @staticmethod
    def retry_queue(queue: str, seconds: int) -> str:
        return f"{queue}.retry.{seconds}s"

    @property
    def work_queues(self) -> tuple[str, ...]:
        return (self.render_queue, self.pin_queue, self.relay_queue, self.status_queue)

    @property
    def all_queues(self) -> tuple[str, ...]:
        """Every queue this topology declares (to remove a test's or a benchmark's topology)."""
        per_stage = [(q, self.dead_queue(q), *(self.retry_queue(q, t) for t in RETRY_TIERS)) for q in self.work_queues]
        return (*(name for names in per_stage for name in names), self.dead_watch_queue, self.watch_queue)

    @property
    def exchanges(self) -> tuple[str, ...]:
        return (self.jobs_exchange, self.events_exchange, self.dead_letter_exchange)


def retry_tier(delay: float) -> int:
    """The shortest tier that waits at least `delay` seconds (the longest one if none does)."""
    return next((tier for tier in RETRY_TIERS if tier >= delay), RETRY_TIERS[-1])


DEAD_LETTERED_BY_HEADER = "x-mintpipe-dead-lettered-by"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def broker_dead_letter_reason(headers: dict[str, Any] | None) -> str | None:
    """Why the broker itself dead-lettered this copy of a message (`delivery_limit`, `rejected`, `maxlen`,
    `expired`), or None when we did (Broker.dead_letter stamps DEAD_LETTERED_BY_HEADER, and a replay removes it).

    What the broker writes decides, not our own headers: a message that once waited in a retry tier carries
    REASON_HEADER (and an `expired` x-death from that tier) wherever it goes next. RabbitMQ keeps x-death
    newest first, so its first entry is this dead-lettering; x-first-death-reason would name the retry tier's
    `expired`, long over."""
    headers = headers or {}
    if DEAD_LETTERED_BY_HEADER in headers:
        return None
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], dict) and deaths[0].get("reason"):
        return _text(deaths[0]["reason"])
    first = headers.get("x-first-death-reason")
    return _text(first) if first else None


def _quorum_args(topo: Topology, queue: str) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": topo.dead_letter_exchange,
        "x-dead-letter-routing-key": queue,
        "x-delivery-limit": DELIVERY_LIMIT,
    }


async def declare_topology(channel: AbstractChannel, topo: Topology) -> None:
    jobs = await channel.declare_exchange(topo.jobs_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    events = await channel.declare_exchange(topo.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    dlx = await channel.declare_exchange(topo.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    watch = await channel.declare_queue(topo.dead_watch_queue, durable=True, arguments={"x-queue-type": "quorum"})
    for stage_queue in (topo.render_queue, topo.pin_queue):
        await watch.bind(dlx, routing_key=stage_queue)
    for queue, exchange, key, extra in (
        (topo.render_queue, jobs, "render", {}),
        (topo.pin_queue, jobs, "pin", {}),
        (topo.relay_queue, jobs, "relay", {"x-single-active-consumer": True}),
        (topo.status_queue, events, "job.#", {}),
    ):
        q = await channel.declare_queue(queue, durable=True, arguments={**_quorum_args(topo, queue), **extra})
        await q.bind(exchange, routing_key=key)
        dead = await channel.declare_queue(
            topo.dead_queue(queue), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(dlx, routing_key=queue)
        for seconds in RETRY_TIERS:
            # Expired messages dead-letter through the default exchange straight back to the work queue.
            await channel.declare_queue(topo.retry_queue(queue, seconds), durable=True, arguments={
                "x-queue-type": "quorum", "x-message-ttl": max(1, round(seconds * 1000 * topo.retry_scale)),
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue,
            })
    await declare_watch_queue(channel, topo)


async def declare_watch_queue(channel: AbstractChannel, topo: Topology) -> None:
    """The watcher's tick queue: a tick is worth nothing once a newer one exists, so it keeps one (drop-head)."""
    jobs = await channel.get_exchange(topo.jobs_exchange, ensure=False)
    q = await channel.declare_queue(topo.watch_queue, durable=True, arguments={
        "x-queue-type": "quorum", "x-single-active-consumer": True, "x-max-length": 1})
    await q.bind(jobs, routing_key="tick")


async def delete_topology(channel: AbstractChannel, topo: Topology) -> None:
    """Drops every queue and exchange of `topo`, with any messages in them: for a test or benchmark that ran on
    a prefix of its own (and for an operator retiring one)."""
    for queue in topo.all_queues:
        await channel.queue_delete(queue)
    for exchange in topo.exchanges:
        await channel.exchange_delete(exchange)


class BrokerUnavailable(RuntimeError):
    """The broker could not take (or confirm) a message; the caller should retry later."""


class Broker:
    """One robust connection per process: a confirming publish channel plus one channel per consumer.

    aio-pika's robust connection reconnects by itself and restores channels and consumers.
    """

    def __init__(self, url: str, topology: Topology, service: str) -> None:
        self.url = url
        self.topology = topology
        self.service = service
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    async def connect(self, attempts: int = 30, delay: float = 1.0) -> None:
        last: Exception | None = None
        for _ in range(attempts):
            try:
                self._connection = await aio_pika.connect_robust(
                    self.url, client_properties={"connection_name": self.service}
                )
                break
            except (OSError, aio_pika.exceptions.AMQPError) as exc:  # not up yet: wait for it
                last = exc
                log.warning("broker not reachable yet", error=str(exc))
                await asyncio.sleep(delay)
        else:
            raise BrokerUnavailable(f"cannot reach the broker: {last}")
        self._publish_channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare_topology(self._publish_channel, self.topology)
        for name in (self.topology.jobs_exchange, self.topology.events_exchange,
                     self.topology.dead_letter_exchange):
            self._exchanges[name] = await self._publish_channel.get_exchange(name, ensure=False)
        self._exchanges[""] = self._publish_channel.default_exchange

    @property
    def connected(self) -> bool:
        conn = self._connection
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    async def channel(self, prefetch: int) -> AbstractChannel:
        assert self._connection is not None, "connect() first"
        ch = await self._connection.channel()
        await ch.set_qos(prefetch_count=prefetch)
        return ch

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        payload: ProtoMessage | bytes,
        *,
        headers: dict[str, Any] | None = None,
        message_id: str | None = None,
        type_: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Publish persistently and wait for the broker's confirm (mandatory: unroutable is an error)."""
        if not self.connected:
            raise BrokerUnavailable("broker connection is down")
        body = payload if isinstance(payload, bytes) else payload.SerializeToString()
        message = aio_pika.Message(
            body,
            content_type=PROTOBUF,
            type=type_ if isinstance(payload, bytes) else payload.DESCRIPTOR.full_name,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers or {},
            message_id=message_id,
            app_id=self.service,
        )
        try:
            await self._exchanges[exchange].publish(message, routing_key, mandatory=True, timeout=timeout)
        except (TimeoutError, aio_pika.exceptions.AMQPError, OSError, RuntimeError) as exc:
            raise BrokerUnavailable(f"publish to {exchange}/{routing_key} not confirmed: {exc!r}") from exc

    async def dead_letter(self, queue: str, message: AbstractIncomingMessage, reason: str) -> None:
        """Park a message in <queue>.dead with a reason a person can read, then ack the original.

        If the dead-letter publish is not confirmed the original is handed back instead, so nothing is lost.
        """
        headers = dict(message.headers or {})
        headers.update({REASON_HEADER: reason[:1000], "x-mintpipe-queue": queue,
                        DEAD_LETTERED_BY_HEADER: self.service})
        try:
            await self.publish(self.topology.dead_letter_exchange, queue, message.body, headers=headers,
                               message_id=message.message_id, type_=message.type)
        except BrokerUnavailable:
            await message.nack(requeue=True)
            raise
        await message.ack()

    async def retry_later(self, queue: str, message: AbstractIncomingMessage, delay: float, attempt: int,
                          reason: str) -> int:
        """Park a message in the retry tier that fits `delay`, then ack the original. Returns the tier.

        Within a tier every message waits the same time, so expiry order is queue order (no head-of-line
        blocking); the jitter comes from the caller's choice of delay.
        """
        tier = retry_tier(delay)
        headers = dict(message.headers or {})
        headers.update({ATTEMPT_HEADER: attempt, REASON_HEADER: reason[:1000]})
        await self.publish("", self.topology.retry_queue(queue, tier), message.body, headers=headers,
                           message_id=message.message_id, type_=message.type)
        await message.ack()
        return tier

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
