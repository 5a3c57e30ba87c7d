"""Many small calls to one remote method as few batched calls: what arrives while the batches are in flight goes in
the next one, as the job store's group commit does with its writes (mintpipe.db.group_commit).

Used by the bridge for SubmitJobs, and by the gateway for the job store's reservations (StatusService.ReserveJobs)
and for marking jobs published. A lone call goes at once (the batch starts on the event loop's next turn); under
load the batches grow by themselves, so the per-call cost of a gRPC round trip (~0.3 ms of CPU on each side,
measured with py-spy on the submit path) is paid once per batch, without a timer adding latency at low load.

A few batches may be in flight at once (`max_in_flight`), so one slow answer does not hold up everyone queued
behind it; but another batch goes only once the last one has been out for `overlap_after` seconds, longer than a
round trip usually takes (a few ms): starting one at once split the batches at ~200 submissions a second and cost
more CPU a submission (bench/bridge.py, load ~3.3: 3.49 -> 4.13 ms across status and gateway). An item that
waited in the queue longer than `max_wait` fails with Unavailable (the caller retries with its idempotency key)
instead of waiting on a stuck peer.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from mintpipe.runtime.log import get_logger

T = TypeVar("T")
R = TypeVar("R")

log = get_logger("mintpipe.coalesce")


class Unavailable(Exception):
    """This item's batch could not be answered (its call failed or was cancelled, or the item waited too long in
    the queue): nothing is known of its outcome, so a retry with the same key is the way on. Every caller gets an
    instance of its own; `cause` is the batch's failure (None for a queue timeout)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class _Entry:
    __slots__ = ("item", "future", "size", "added")

    def __init__(self, item: Any, future: asyncio.Future[Any] | None, size: int, added: float) -> None:
        self.item, self.future, self.size, self.added = item, future, size, added


class Coalescer(Generic[T, R]):
    """`send(items)` answers one result per item, in order (an exception instance fails that item alone); if it
    raises, every item of the batch gets an Unavailable of its own. At most `max_batch` items and `max_bytes`
    (by `size(item)`, when given) in one batch; at most `max_in_flight` batches at once."""

    def __init__(self, send: Callable[[list[T]], Awaitable[list[Any]]], max_batch: int = 256,
                 linger: float = 0.0, name: str = "batch", *, size: Callable[[T], int] | None = None,
                 max_bytes: int = 1 << 20, max_in_flight: int = 2, max_wait: float = 5.0,
                 overlap_after: float = 0.02) -> None:
        self._send = send
        self.max_batch = max_batch
        self.linger = linger  # seconds to wait for company before a batch goes (0: the next loop turn)
        self.name = name
        self._size = size
        self.max_bytes = max_bytes
        self.max_in_flight = max_in_flight
        self.max_wait = max_wait
        self.overlap_after = overlap_after
        self._started = 0.0  # time.monotonic() when the last batch task started
        self._rekick: asyncio.TimerHandle | None = None
        self._pending: deque[_Entry] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._gathering = False  # a batch task started that has not taken its items yet
        self._expiry: asyncio.TimerHandle | None = None
        self.batches = 0  # batches sent and the items in them (items / batches: the grouping)
        self.items = 0

    async def call(self, item: T) -> R:
        """`item` in the next batch; its result (or its exception) once that batch is answered."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._add(item, future)
        return await future

    def post(self, item: T) -> None:
        """`item` in the next batch, nobody waiting: a failure is logged (for bookkeeping a retry makes good)."""
        self._add(item, None)

    async def flush(self) -> None:
        """Returns once everything added so far was sent and answered, or failed (a drain). A batch task's own
        failure or cancellation is not raised here (its items got theirs); a cancel of flush's caller is."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def _add(self, item: T, future: asyncio.Future[R] | None) -> None:
        now = time.monotonic()
        self._pending.append(_Entry(item, future, self._size(item) if self._size else 0, now))
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().call_at(now + self.max_wait, self._expire)
        self._kick()

    def _kick(self) -> None:
        if self._pending and not self._gathering and len(self._tasks) < self.max_in_flight:
            if self._tasks:  # one is in flight: another only once it has been out a while
                wait = self._started + self.overlap_after - time.monotonic()
                if wait > 0:
                    if self._rekick is None:
                        self._rekick = asyncio.get_running_loop().call_later(wait, self._kick_later)
                    return
            self._started = time.monotonic()
            self._gathering = True
            # A fresh context: the batch is nobody's in particular, so its logs must not carry the job_id (or
            # anything else) bound by whichever caller happened to start it.
            task = asyncio.get_running_loop().create_task(self._drain(), context=contextvars.Context())
            self._tasks.add(task)

    def _kick_later(self) -> None:
        self._rekick = None
        self._kick()

    def _expire(self) -> None:
        """Fails what waited longer than max_wait in the queue (Unavailable), and rearms for the oldest left."""
        self._expiry = None
        now = time.monotonic()
        pending = self._pending
        while pending and now - pending[0].added >= self.max_wait:
            entry = pending.popleft()
            self._fail(entry, Unavailable(f"{self.name}: waited over {self.max_wait:g} s in the queue"))
        if pending:
            self._expiry = asyncio.get_running_loop().call_at(pending[0].added + self.max_wait, self._expire)

    def _take(self) -> list[_Entry]:
        batch: list[_Entry] = []
        size = 0
        pending = self._pending
        while pending and len(batch) < self.max_batch:
            entry = pending[0]
            if entry.future is not None and entry.future.done():  # its caller was cancelled: not sent at all
                pending.popleft()
                continue
            if batch and size + entry.size > self.max_bytes:
                break
            pending.popleft()
            batch.append(entry)
            size += entry.size
        return batch

    def _fail(self, entry: _Entry, error: BaseException) -> None:
        if entry.future is None:
            log.warning(f"{self.name} failed", error=repr(error))
        elif not entry.future.done():
            entry.future.set_exception(error)

    async def _drain(self) -> None:
        batch: list[_Entry] = []
        gathering = True
        try:
            if self.linger > 0:
                await asyncio.sleep(self.linger)
            else:
                await asyncio.sleep(0)  # the calls made on this loop turn come along
            batch = self._take()
            gathering = self._gathering = False
            self._kick()  # more than one batch's worth queued: the next one goes alongside
            if not batch:
                return
            try:
                results = await self._send([entry.item for entry in batch])
            except Exception as exc:
                for entry in batch:
                    self._fail(entry, Unavailable(f"{self.name}: the batch's call failed ({exc!r})", exc))
                return
            finally:
                self.batches += 1
                self.items += len(batch)
            if len(results) != len(batch):
                for entry in batch:
                    self._fail(entry, Unavailable(f"{self.name}: {len(results)} answers to {len(batch)} calls"))
                return
            for entry, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    self._fail(entry, result)
                elif entry.future is not None and not entry.future.done():
                    entry.future.set_result(result)
        except BaseException as exc:  # CancelledError (a grpc.aio call whose channel closed), KeyboardInterrupt
            left = [*batch, *self._pending]
            self._pending.clear()
            for entry in left:
                self._fail(entry, Unavailable(f"{self.name}: the batch was cancelled ({exc!r})", exc))
            raise
        finally:
            if gathering:  # cancelled before it took its items
                self._gathering = False
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._kick()
