"""Token buckets in PostgreSQL, shared by every replica (per client IP at the bridges, per wallet at the
gateways), so N replicas give a client the budget of one, not N times it.

One statement per check: an upsert that refills the bucket by the time elapsed, takes a token when there is
one and says whether it did. Concurrent checks of one key serialise on its row (ON CONFLICT DO UPDATE locks
it and re-reads the latest version), so two replicas never both take the last token.

If the database cannot be reached the check lets the request through (logged): the limit is abuse protection,
and refusing every submission while PostgreSQL is away would turn its outage into a full one.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from mintpipe.log import get_logger
from mintpipe.replica_db import ensure_schema

log = get_logger(__name__)

# Refill by the time since the row's last update (never negative: a statement that started before the one
# that last wrote the row sees an older clock), take a token when at least one is there.
_TAKE = """
INSERT INTO rate_buckets AS b (scope, key, tokens, granted, updated_at)
VALUES ($1, $2, $3 - 1, true, statement_timestamp())
ON CONFLICT (scope, key) DO UPDATE SET
    tokens = CASE WHEN LEAST($3, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at))
                                  * $4) >= 1
                  THEN LEAST($3, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at))
                             * $4) - 1
                  ELSE LEAST($3, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at))
                             * $4) END,
    granted = LEAST($3, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at)) * $4) >= 1,
    updated_at = GREATEST(b.updated_at, statement_timestamp())
RETURNING granted, tokens
"""
# A bucket untouched for longer than it takes to refill is full again: its row can go.
_PRUNE = "DELETE FROM rate_buckets WHERE scope = $1 AND updated_at < statement_timestamp() - make_interval(secs => $2)"
PRUNE_EVERY_SECONDS = 300.0


class PgRateLimiter:
    """`rate` requests per `per` seconds for each key of `scope`, bursts up to `burst`, across every replica."""

    def __init__(self, dsn: str, scope: str, rate: float, per: float = 60.0, burst: int | None = None) -> None:
        self.dsn = dsn
        self.scope = scope
        self.refill = rate / per
        self.capacity = float(burst if burst is not None else max(1, int(rate)))
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._pruned = time.monotonic()

    async def open(self) -> None:
        async with self._opening:
            if self._pool is None:
                pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4, timeout=10)
                async with pool.acquire() as conn:
                    await ensure_schema(conn)
                self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def take(self, key: str) -> float:
        """0 when allowed (a token is taken), else seconds until the next token."""
        try:
            if self._pool is None:
                await self.open()
            assert self._pool is not None
            granted, tokens = await self._pool.fetchrow(_TAKE, self.scope, key, self.capacity, self.refill)
            if time.monotonic() - self._pruned > PRUNE_EVERY_SECONDS:
                self._pruned = time.monotonic()
                await self._pool.execute(_PRUNE, self.scope, self.capacity / self.refill)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("rate limit check skipped: database unreachable", scope=self.scope,
                        error=type(exc).__name__)
            return 0.0
        return 0.0 if granted else (1 - tokens) / self.refill
