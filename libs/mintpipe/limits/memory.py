"""Per-key token buckets (per client IP at the bridge, per wallet at the gateway), bounded in memory; with a
PostgreSQL DSN (MINTPIPE_DATABASE_URL) shared by every replica instead (mintpipe.limits.postgres)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol


class RateLimiter(Protocol):
    async def take(self, key: str) -> float: ...


class KeyedRateLimiter:
    """`rate` requests per `per` seconds for each key, with bursts up to `burst`.

    Keeps at most `max_keys` buckets (least recently used dropped), so a flood of distinct keys cannot
    exhaust memory; a dropped key simply starts again with a full bucket.
    """

    def __init__(self, rate: float, per: float = 60.0, burst: int | None = None, max_keys: int = 100_000) -> None:
        self.refill = rate / per
        self.capacity = float(burst if burst is not None else max(1, int(rate)))
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str, now: float | None = None) -> float:
        """0 when allowed (a token is taken), else seconds until the next token."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / self.refill
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    async def take(self, key: str) -> float:
        """`acquire` for callers that may be given the shared (PostgreSQL) limiter instead."""
        return self.acquire(key)


def rate_limiter(database_url: str | None, scope: str, rate: float, per: float = 60.0,
                 burst: int | None = None) -> RateLimiter:
    """Shared by every replica when `database_url` is a PostgreSQL DSN, in this process's memory otherwise."""
    from mintpipe.db.replica import postgres_dsn

    dsn = postgres_dsn(database_url)
    if dsn is None:
        return KeyedRateLimiter(rate, per, burst)
    from mintpipe.limits.postgres import PgRateLimiter

    return PgRateLimiter(dsn, scope, rate, per, burst)
