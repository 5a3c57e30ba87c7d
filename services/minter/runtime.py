"""The minter's two single-active-consumer roles, both handed over by RabbitMQ, with no lock of our own:

- the **sender**: the active consumer of `<p>.minter.relay` sends relayed mints and sweeps the ones in flight.
  Ack policy: a request is acked once its relay is stored and sent and `relay sent` is confirmed by the broker,
  or once its refusal is published (`relay failed`); a node that does not answer is a transient failure (the
  message waits in a retry tier). Guarantee: at most one relay per job, and no two relays share a nonce
  (UNIQUE(sender, nonce) in the same transaction that takes it), even across a handover.
- the **watcher**: every replica publishes a tick to `<p>.minter.watch` each poll interval (the queue keeps the
  newest only); its active consumer runs one round per tick, at most one per interval, and publishes a sweep
  for the sender when relays are in flight. Ack policy: after the round (a tick is worth nothing once late).

Why single active consumer for the watcher too, rather than a lease with a fencing token: its effects are
idempotent and checked against the chain (a mint is recorded by job, `minted` applied once by status, an undo
only when the contract agrees), so a second watcher overlapping for a moment after a handover costs repeated RPC
calls, never a wrong result; and the broker already notices a dead consumer (its connection closes, or misses
heartbeats) and activates the next one, which is the takeover we need without a clock of our own.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from minter.chain import JobRef
from minter.relayer import Relayer
from minter.store import MinterStore
from minter.watcher import ChainWatcher
from mintpipe.core.stages import is_job_id, replica_id
from mintpipe.messaging.broker import Broker
from mintpipe.messaging.consumer import QueueConsumer
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import broker_pb2

log = get_logger("minter")
SWEEP_SECONDS = 5.0
HEARTBEAT_SECONDS = 5.0  # the overview lists replicas heard from in the last minute


def check_relay(request: broker_pb2.RelayRequest) -> str | None:
    if request.sweep:
        return None
    if not is_job_id(request.job_id):
        return "job_id must be 32 hex digits"
    if not request.wallet.startswith("0x") or len(request.wallet) != 42:
        return "wallet must be an address"
    if not request.token_uri.startswith("ipfs://"):
        return "token_uri must be an ipfs:// URI"
    return None


class RelayHandler:
    """The sender's handler: a relay asked for, or a sweep of the relays in flight."""

    def __init__(self, relayer: Relayer) -> None:
        self.relayer = relayer
        self.active_at = 0.0

    async def __call__(self, request: broker_pb2.RelayRequest, _message: AbstractIncomingMessage) -> None:
        self.active_at = time.time()
        if request.sweep:
            await self.relayer.sweep()
            return
        await self.relayer.request(JobRef(request.job_id, request.wallet, request.token_uri))


def relay_consumer(broker: Broker, relayer: Relayer) -> tuple[QueueConsumer, RelayHandler]:
    handler = RelayHandler(relayer)
    # prefetch 1: one relay at a time, in order (each takes the next nonce).
    return QueueConsumer(broker, broker.topology.relay_queue, broker_pb2.RelayRequest, handler, prefetch=1,
                         check=check_relay), handler


class WatchDuty:
    """Publishes this replica's ticks and, while it is the watch queue's active consumer, runs the rounds."""

    def __init__(self, broker: Broker, watcher: ChainWatcher, store: MinterStore, poll_seconds: float,
                 relay_on: bool, sender: RelayHandler | None = None, relayer_address: str = "") -> None:
        self.broker, self.watcher, self.store = broker, watcher, store
        self.poll_seconds = poll_seconds
        self.relay_on = relay_on
        self.sender = sender  # this replica's relay handler: active while it takes messages
        self.relayer_address = relayer_address
        self.name = replica_id()
        self.started_at = time.time()
        self.active_at = 0.0
        self._channel: Any = None
        self._queue: Any = None
        self._tag: str | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._busy = asyncio.Lock()
        self._last_sweep = 0.0

    @property
    def active(self) -> bool:
        """This replica ran a round lately: it is the active watcher."""
        return time.time() - self.active_at < 3 * self.poll_seconds + 1 + HEARTBEAT_SECONDS

    async def start(self) -> None:
        self._channel = await self.broker.channel(prefetch=1)
        # A passive declare on the robust channel (not get_queue): only then is the consumer restored when the
        # connection comes back after a broker restart (mintpipe.messaging.consumer says the same).
        self._queue = await self._channel.declare_queue(self.broker.topology.watch_queue, passive=True)
        self._tag = await self._queue.consume(self._on_tick)
        self._ticker = asyncio.create_task(self._tick_loop())

    async def poke(self) -> None:
        """A round soon, whoever watches (a mint was just reported, or a relay found its job minted)."""
        await self._tick(poke=True)

    async def _tick(self, poke: bool = False) -> None:
        try:
            await self.broker.publish(self.broker.topology.jobs_exchange, "tick", b"", type_="tick",
                                      headers={"x-poke": 1} if poke else None, timeout=5)
        except Exception as exc:  # the broker is away: health says so; the next tick tries again
            log.debug("tick not published", error=type(exc).__name__)

    @property
    def sending(self) -> bool:
        """This replica took a relay message lately (a sweep reaches the active sender every SWEEP_SECONDS)."""
        return self.sender is not None and time.time() - self.sender.active_at < 3 * SWEEP_SECONDS

    async def _tick_loop(self) -> None:
        """A tick each poll interval; a heartbeat every HEARTBEAT_SECONDS at most (whatever the interval)."""
        last_tick = 0.0
        while True:
            if time.monotonic() - last_tick >= self.poll_seconds:
                last_tick = time.monotonic()
                await self._tick()
            try:
                await self.store.heartbeat(self.name, watching=self.active, sending=self.sending,
                                           relayer=self.relayer_address, head=self.watcher.head,
                                           started_at=self.started_at)
            except Exception as exc:  # the store is away: the overview shows this replica as unheard of
                log.debug("heartbeat not stored", error=type(exc).__name__)
            await asyncio.sleep(min(self.poll_seconds, HEARTBEAT_SECONDS) * random.uniform(0.9, 1.1))

    async def _on_tick(self, message: AbstractIncomingMessage) -> None:
        poke = bool((message.headers or {}).get("x-poke"))
        try:
            # Every replica ticks each interval: one round per interval is enough, unless poked.
            if poke or time.time() - self.watcher.last_round_at >= 0.8 * self.poll_seconds:
                async with self._busy:
                    await self.watcher.run_round()
                    self.active_at = time.time()
                    await self._maybe_sweep()
        finally:
            try:
                await message.ack()
            except Exception as exc:  # the channel went with its connection: the tick is worth nothing anyway
                log.debug("tick not acked", error=type(exc).__name__)

    async def _maybe_sweep(self) -> None:
        """Every SWEEP_SECONDS the watcher asks the active sender, whoever it is, to look at the relays in flight
        (and so to say it is the sender: its heartbeat tells the overview)."""
        if not self.relay_on or time.time() - self._last_sweep < max(self.poll_seconds, SWEEP_SECONDS):
            return
        self._last_sweep = time.time()
        try:
            await self.broker.publish(self.broker.topology.jobs_exchange, "relay",
                                      broker_pb2.RelayRequest(sweep=True, request_id="sweep"), timeout=5)
        except Exception as exc:
            log.debug("sweep not published", error=type(exc).__name__)

    async def stop(self) -> None:
        """Stops ticking and consuming; a round in progress finishes. Bounded: a broker already gone (its
        connection closed or lost) must not hold a drain."""
        if self._ticker is not None:
            self._ticker.cancel()
        try:
            await self.store.forget_replica(self.name)
        except Exception as exc:
            log.debug("heartbeat not removed", error=type(exc).__name__)
        if self._channel is not None and self._tag is not None:
            try:
                await asyncio.wait_for(self._queue.cancel(self._tag), 3)
            except (aio_pika.exceptions.AMQPError, RuntimeError, OSError, TimeoutError):
                pass
        async with self._busy:  # a round in progress finishes
            pass
        if self._channel is not None:
            try:
                await asyncio.wait_for(self._channel.close(), 3)
            except (aio_pika.exceptions.AMQPError, RuntimeError, OSError, TimeoutError):
                pass
