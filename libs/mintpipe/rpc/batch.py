"""What the batched gRPC methods share (SubmitJobs, ReserveJobs, MarkPublished): a refusal that travels in a
batch's outcome, the status codes by number, and a batched call that falls back to one call per item against a
peer of an older version (a rolling upgrade)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Generic, TypeVar

import grpc

from mintpipe.runtime.log import get_logger

T = TypeVar("T")

log = get_logger("mintpipe.grpc_batch")

_CODES = {code.value[0]: code for code in grpc.StatusCode}
RETRY_BATCHED_AFTER = 60.0  # seconds one call per item after an older peer refused the batched method


def status_code(number: int) -> grpc.StatusCode:
    """A batch outcome's `code` as a StatusCode (UNKNOWN for a number this grpc does not know)."""
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


class Refused(Exception):
    """A refusal of one item: what the single-item method would abort with; in a batch, that item's outcome."""

    def __init__(self, code: grpc.StatusCode, details: str, retry_after: int = 0) -> None:
        super().__init__(details)
        self.code, self.details, self.retry_after = code, details, retry_after


class OlderPeer(Exception):
    """Raised by a batched call whose peer answered only its first `answered` items (it read the single-item
    field alone): the rest go one call each."""

    def __init__(self, answered: list[Any]) -> None:
        super().__init__(f"the peer answered {len(answered)} item(s) of the batch")
        self.answered = answered


class BatchedCall(Generic[T]):
    """`batched(items)` (one result per item), or `single(item)` once per item when the peer does not have the
    batched method (its answer is one of `fallback_codes`, or `batched` raises OlderPeer). A peer that said so
    is asked one item at a time for RETRY_BATCHED_AFTER seconds, then batched again (it may have been upgraded
    by then: a rolling upgrade's older replicas go away)."""

    def __init__(self, name: str, batched: Callable[[list[T]], Awaitable[list[Any]]],
                 single: Callable[[T], Awaitable[Any]],
                 fallback_codes: Collection[grpc.StatusCode] = (grpc.StatusCode.UNIMPLEMENTED,)) -> None:
        self.name, self._batched, self._single, self.fallback_codes = name, batched, single, fallback_codes
        self._single_until = 0.0  # time.monotonic() before which the peer is asked one item at a time

    async def __call__(self, items: list[T]) -> list[Any]:
        done: list[Any] = []
        if time.monotonic() >= self._single_until:
            try:
                return await self._batched(items)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in self.fallback_codes:
                    raise
                self._older_peer(exc.code().name)
            except OlderPeer as older:
                done = older.answered
                self._older_peer("answered part of the batch")
        rest = items[len(done):]
        if len(rest) == 1:
            return [*done, await self._single(rest[0])]
        return [*done, *await asyncio.gather(*(self._single(item) for item in rest))]

    def _older_peer(self, why: str) -> None:
        self._single_until = time.monotonic() + RETRY_BATCHED_AFTER
        log.warning(f"{self.name}: the peer has no batched method; one call per item for a while",
                    why=why, seconds=RETRY_BATCHED_AFTER)
