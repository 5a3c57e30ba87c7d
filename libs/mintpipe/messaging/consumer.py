"""A queue consumer with manual acks, a dead-letter path with reasons, and a graceful stop.

The handler does the work; this runner acks only after the handler returned (so after its effect).
- a body that does not parse as the expected protobuf, or fails its own checks → <queue>.dead with the reason;
- PermanentError → on_permanent (e.g. publish `failed`), then <queue>.dead with the reason;
- JobCancelled (an operator cancelled the job) → acked and dropped;
- any other exception is transient: the message waits in a retry tier (jittered exponential backoff, or the
  backend's Retry-After) without blocking the queue, then comes back; after MAX_ATTEMPTS it is treated as
  permanent ("gave up after N attempts: <last reason>").
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from mintpipe.messaging.broker import ATTEMPT_HEADER, RETRY_TIERS, Broker, BrokerUnavailable
from mintpipe.runtime.log import get_logger
from mintpipe.runtime.metrics import MESSAGES, stage_of

log = get_logger("mintpipe.consumer")

M = TypeVar("M", bound=ProtoMessage)


# Ten attempts: nine waits between them (the tenth failure fails the job at once, it does not wait). The waits
# double from 5 s to the 10-minute cap, each one either its step or, at random, the retry tier just below it
# (the jitter: a burst of failures comes back at two moments, not one). The steps are retry tiers themselves, so
# the broker waits exactly what is drawn: the ten attempts span 25.9 to 35.8 minutes (30.8 on average), and a
# backend outage of a quarter of an hour (even of 25 minutes) fails nothing. tests/unit/test_retry_schedule.py
# computes this from the code.
MAX_ATTEMPTS = 10
RETRY_STEPS = (5, 15, 30, 60, 120, 240, 480, 600, 600)  # seconds, after the 1st, 2nd, ... failed attempt


class PermanentError(Exception):
    """This message can never succeed as it is; its reason is shown to people."""


class ParkError(PermanentError):
    """Cannot succeed until an operator acts (bad credentials, budget spent): dead-lettered for replay, and the
    job is not failed, so the replay can still finish it."""


class JobCancelled(Exception):
    """An operator cancelled the job: the message is acked and dropped (the job store already says why)."""


class TransientError(Exception):
    """Worth retrying later; `retry_after` (seconds) when the other side said how long to wait.

    `counts=False` for waits of our own making (the shared rate limit): they do not use up an attempt.
    """

    def __init__(self, message: str, retry_after: float | None = None, counts: bool = True) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.counts = counts


def attempts_so_far(message: AbstractIncomingMessage) -> int:
    """How many handled attempts this message has had (retries are republished, so we count them)."""
    raw = (message.headers or {}).get(ATTEMPT_HEADER, 0)
    try:
        return max(int(raw), 0)
    except (TypeError, ValueError):
        return 0


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """The wait after failed attempt `attempt` (0 = the first): its step or, at random, the retry tier just below
    it; never sooner than the backend's Retry-After (the broker then rounds up to the next tier)."""
    step = RETRY_STEPS[min(max(attempt, 0), len(RETRY_STEPS) - 1)]
    below = max((tier for tier in RETRY_TIERS if tier < step), default=step)
    return max(float(random.choice((below, step))), retry_after or 0.0)


class QueueConsumer(Generic[M]):
    def __init__(
        self,
        broker: Broker,
        queue: str,
        message_type: type[M],
        handler: Callable[[M, AbstractIncomingMessage], Awaitable[None]],
        *,
        prefetch: int,
        check: Callable[[M], str | None] | None = None,
        on_permanent: Callable[[M, str], Awaitable[None]] | None = None,
        on_retry: Callable[[M, int, int, str], Awaitable[None]] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.broker = broker
        self.queue_name = queue
        self.message_type = message_type
        self.handler = handler
        self.prefetch = prefetch
        self.check = check
        self.on_permanent = on_permanent
        self.on_retry = on_retry
        self.max_attempts = max_attempts
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._channel = await self.broker.channel(self.prefetch)
        # A passive declare (not get_queue(ensure=False)): only queues declared on the robust channel are
        # remembered by it, and only their consumers are restored when the connection comes back after a
        # broker restart; without it every consumer silently stops for good.
        self._queue = await self._channel.declare_queue(self.queue_name, passive=True)
        self._tag = await self._queue.consume(self._on_message, no_ack=False)
        log.info("consuming", queue=self.queue_name, prefetch=self.prefetch)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(self._settle(message))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    def _parse(self, message: AbstractIncomingMessage) -> M | str:
        expected = self.message_type.DESCRIPTOR.full_name
        if message.type and message.type != expected:
            return f"expected a {expected} message, got type {message.type!r}"
        try:
            payload = self.message_type.FromString(message.body)
        except (DecodeError, ValueError) as exc:
            return f"body is not a valid {expected}: {exc}"
        problem = self.check(payload) if self.check else None
        return f"invalid {expected}: {problem}" if problem else payload

    def _count(self, outcome: str) -> None:
        MESSAGES.labels(stage_of(self.queue_name), outcome).inc()

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        try:
            await self._process(message)
        except asyncio.CancelledError:
            self._count("handed_back")
            raise
        except (AMQPError, ChannelInvalidStateError, ConnectionError) as exc:
            self._count("handed_back")
            # The channel went away under us (broker restart): the broker redelivers the unacked message.
            log.warning("channel lost before the message was settled; it will be redelivered", error=repr(exc))
        except Exception as exc:  # aiormq raises a bare Exception when acking on a connection it closed
            if self._channel is not None and not self._channel.is_closed:
                raise
            self._count("handed_back")
            log.warning("channel closed before the message was settled; it will be redelivered", error=repr(exc))

    async def _process(self, message: AbstractIncomingMessage) -> None:
        parsed = self._parse(message)
        if isinstance(parsed, str):
            log.error("dead-lettering unreadable message", queue=self.queue_name, reason=parsed)
            await self._dead_letter(message, parsed)
            return
        job_id = getattr(parsed, "job_id", "")
        with structlog.contextvars.bound_contextvars(job_id=job_id, queue=self.queue_name):
            attempt = attempts_so_far(message)
            try:
                await self.handler(parsed, message)
            except asyncio.CancelledError:
                # Stopping: hand the message back at once so another replica takes it.
                if not message.processed:
                    await asyncio.shield(message.nack(requeue=True))
                raise
            except JobCancelled:
                log.warning("job cancelled by an operator; dropped")
                if not message.processed:
                    await message.ack()
                self._count("cancelled")
                return
            except ParkError as exc:
                log.error("parked for an operator", reason=str(exc))
                await self._dead_letter(message, str(exc))
                return
            except PermanentError as exc:
                await self._fail(parsed, message, str(exc))
                return
            except Exception as exc:  # anything else is treated as transient
                await self._retry(parsed, message, attempt, exc)
                return
            if not message.processed:
                await message.ack()
            self._count("acked")

    async def _retry(self, payload: M, message: AbstractIncomingMessage, attempt: int, exc: Exception) -> None:
        reason = str(exc) if isinstance(exc, TransientError) else f"{type(exc).__name__}: {exc}"
        counts = getattr(exc, "counts", True)
        if counts and attempt + 1 >= self.max_attempts:
            await self._fail(payload, message, f"gave up after {attempt + 1} attempts: {reason}")
            return
        delay = backoff_seconds(attempt, getattr(exc, "retry_after", None))
        next_attempt = attempt + 1 if counts else attempt
        try:
            tier = await self.broker.retry_later(self.queue_name, message, delay, next_attempt, reason)
        except BrokerUnavailable:
            # Cannot park it: hand it back; the robust connection redelivers once the broker is back.
            await asyncio.sleep(min(delay, 5.0))
            if not message.processed:
                await message.nack(requeue=True)
            return
        log.warning("transient failure; retrying later", attempt=next_attempt, retry_in=tier, reason=reason)
        self._count("retried")
        if self.on_retry is not None:
            # Tells operators (the job's retry history); the message is already parked, so a failure here loses
            # nothing but that line of history.
            try:
                await self.on_retry(payload, next_attempt, tier, reason)
            except Exception as exc:
                log.warning("could not announce the retry", error=repr(exc))

    async def _fail(self, payload: M, message: AbstractIncomingMessage, reason: str) -> None:
        log.error("permanent failure", reason=reason)
        if self.on_permanent is not None:
            try:
                await self.on_permanent(payload, reason)
            except BrokerUnavailable:
                await message.nack(requeue=True)
                return
        await self._dead_letter(message, reason)

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        try:
            await self.broker.dead_letter(self.queue_name, message, reason)
            self._count("dead_lettered")
        except BrokerUnavailable:
            log.warning("could not dead-letter now; handed back", queue=self.queue_name)

    async def stop(self, grace: float) -> None:
        """Stop taking messages; let in-flight ones finish within `grace`, then hand the rest back."""
        if self._queue is not None and self._tag is not None:
            try:
                # Bounded: on a connection already closed or lost, a robust channel's cancel waits for a
                # reconnection that never comes (seen: a minter whose broker connection was cut hung its drain).
                await asyncio.wait_for(self._queue.cancel(self._tag), max(grace, 1.0))
            except Exception as exc:  # the channel may already be gone
                log.warning("cancel failed", error=str(exc) or type(exc).__name__)
        if self._inflight:
            log.info("draining", inflight=len(self._inflight), grace=grace)
            _done, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("handed back unfinished messages", count=len(pending))
        if self._channel is not None and not self._channel.is_closed:
            try:
                await asyncio.wait_for(self._channel.close(), 3)
            except Exception as exc:  # gone with its connection: nothing left to close
                log.warning("channel close failed", error=str(exc) or type(exc).__name__)
