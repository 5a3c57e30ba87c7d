"""The pin ledger: what has been pinned where, the monthly budget, the request window to the pinning backend
and any wait the backend asked for (429 Retry-After), shared by every pinner replica and the gateway.

Where: a SQLite file on the shared volume (the default), or PostgreSQL when MINTPIPE_DATABASE_URL is set, so
replicas on several hosts share it (mintpipe.db.core; tables made by the migration 0004_pin_ledger). The limit and the
budget must hold across processes (not per replica). Each operation is one short transaction: on SQLite
BEGIN IMMEDIATE (replicas serialise on the file lock), run whole on the database's writer thread and
group-committed with the other writes queued meanwhile (mintpipe.db.transact); on PostgreSQL each
read-modify-write takes an advisory transaction lock on what it guards (the month's budget, one CID's claim, one
backend's request window), so two replicas never both see room for the last slot or both claim one upload, and
the lock goes at commit.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from mintpipe.db.core import Conn, Database, SqliteDatabase

PINS_PER_JOB = 4  # GIF, MP4, PNG, metadata
RESERVATION_TTL = 3600.0  # a job that never reaches the pinner stops holding budget after this
# Slots older than the window are deleted by one slot-taking call in 16, not by each: the queries only count the
# window (an index range), so a few hundred stale rows cost nothing, and a statement less per request counts.
PRUNE_CHANCE = 1 / 16


def month_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m")


class PinLedger:
    """Every method is a coroutine; the first call opens the database (and applies the migrations)."""

    def __init__(self, target: Path | Database, backend: str = "") -> None:
        self.database = target if isinstance(target, Database) else SqliteDatabase(Path(target), synchronous="FULL")
        self.path = getattr(self.database, "path", None)
        self.backend = backend
        self._ready = False
        self._opening = asyncio.Lock()

    async def open(self) -> PinLedger:
        async with self._opening:
            if not self._ready:
                await self.database.open_migrated()
                self._ready = True
        return self

    async def close(self) -> None:
        if self._ready:
            self._ready = False
            await self.database.close()

    async def _db(self) -> Database:
        if not self._ready:
            await self.open()
        return self.database

    # --- what is pinned -------------------------------------------------------------------------------
    async def is_pinned(self, cid: str) -> bool:
        db = await self._db()
        return await db.fetchrow("SELECT 1 FROM pins WHERE backend=? AND cid=?", (self.backend, cid)) is not None

    async def record_pin(self, cid: str, size: int, job_id: str, now: float | None = None) -> bool:
        """Remember a pin; False when it was already known (then it cost nothing)."""
        now = time.time() if now is None else now
        db = await self._db()
        return await db.execute(
            "INSERT INTO pins (backend, cid, size, job_id, pinned_at, month) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (backend, cid) DO NOTHING", (self.backend, cid, size, job_id, now, month_of(now))) == 1

    async def record_job_pinned(self, job_id: str, settings_hash: str) -> None:
        async def body(tx: Conn) -> None:
            await tx.execute("INSERT INTO pinned_settings (backend, settings_hash) VALUES (?,?) "
                             "ON CONFLICT (backend, settings_hash) DO NOTHING", (self.backend, settings_hash))
            await tx.execute("DELETE FROM reservations WHERE job_id=?", (job_id,))
        await (await self._db()).transact(body)

    async def record_job_result(self, job_id: str, token_uri: str, assets: dict[str, str]) -> None:
        """What a pinned job was announced with, so a late duplicate of its pin job (whose rendered files may be
        gone by then, see status.workers.artifact_sweeper) announces the same again instead of failing."""
        db = await self._db()
        await db.execute(
            "INSERT INTO job_results (job_id, token_uri, assets_json, pinned_at) VALUES (?,?,?,?) "
            "ON CONFLICT (job_id) DO UPDATE SET token_uri=excluded.token_uri, assets_json=excluded.assets_json, "
            "pinned_at=excluded.pinned_at", (job_id, token_uri, json.dumps(assets, sort_keys=True), time.time()))

    async def job_result(self, job_id: str) -> tuple[str, dict[str, str]] | None:
        db = await self._db()
        row = await db.fetchrow("SELECT token_uri, assets_json FROM job_results WHERE job_id=?", (job_id,))
        return (row[0], json.loads(row[1])) if row else None

    async def pins_this_month(self, now: float | None = None) -> int:
        """Pins made this (UTC) month, whichever backend: the budget is the deployment's."""
        now = time.time() if now is None else now
        db = await self._db()
        return int(await db.fetchval("SELECT COUNT(*) FROM pins WHERE month=?", (month_of(now),)))

    # --- one uploader per CID ------------------------------------------------------------------------------
    async def claim_upload(self, cid: str, owner: str, ttl: float, now: float | None = None) -> float:
        """Claim (or renew) the right to upload `cid`: 0 when `owner` holds it, else the seconds until the
        other holder's claim lapses. A redelivered message can run on two replicas at once; without this
        both see the CID as not pinned yet and both upload it. The claim lapses by itself if its holder dies."""
        now = time.time() if now is None else now
        db = await self._db()
        # One atomic statement on both engines (an upsert locks the row it conflicts with): taken when free,
        # lapsed or already ours. One round trip instead of a locked transaction's five on PostgreSQL.
        taken = await db.fetchrow(
            "INSERT INTO upload_claims (backend, cid, owner, expires) VALUES (?,?,?,?) "
            "ON CONFLICT (backend, cid) DO UPDATE SET owner=excluded.owner, expires=excluded.expires "
            "WHERE upload_claims.owner = excluded.owner OR upload_claims.expires <= ? RETURNING owner",
            (self.backend, cid, owner, now + ttl, now))
        if taken is not None:
            return 0.0
        expires = await db.fetchval("SELECT expires FROM upload_claims WHERE backend=? AND cid=?", (self.backend, cid))
        return max((expires or now) - now, 0.001)

    async def release_upload(self, cid: str, owner: str) -> None:
        db = await self._db()
        await db.execute("DELETE FROM upload_claims WHERE backend=? AND cid=? AND owner=?", (self.backend, cid, owner))

    # --- the budget -----------------------------------------------------------------------------------
    async def reserve_budget(self, job_id: str, settings_hash: str, budget: int,
                             now: float | None = None) -> tuple[bool, int, int]:
        """Hold this job's pins against the month's budget: (granted, used, held by jobs in flight).

        Settings already pinned cost nothing (same bytes, same CIDs), so they are always granted.
        """
        now = time.time() if now is None else now
        async def body(tx: Conn) -> tuple[bool, int, int]:
            await tx.execute("DELETE FROM reservations WHERE created_at < ?", (now - RESERVATION_TTL,))
            known, used, held = await tx.fetchrow(
                "SELECT EXISTS (SELECT 1 FROM pinned_settings WHERE settings_hash=?), "
                "(SELECT COUNT(*) FROM pins WHERE month=?), "
                "(SELECT COALESCE(SUM(pins), 0) FROM reservations WHERE job_id != ?)",
                (settings_hash, month_of(now), job_id))
            known = bool(known)
            granted = known or used + held + PINS_PER_JOB <= budget
            if granted and not known:
                await tx.execute(
                    "INSERT INTO reservations (job_id, pins, created_at) VALUES (?,?,?) ON CONFLICT (job_id) "
                    "DO UPDATE SET pins=excluded.pins, created_at=excluded.created_at", (job_id, PINS_PER_JOB, now))
            return granted, int(used), int(held)
        # One lock for the whole deployment's budget: two gateways must not both count the last pins as free.
        return await (await self._db()).transact(body, lock="pin_budget")

    # --- the shared request window ----------------------------------------------------------------------
    async def acquire_request_slot(self, limit: int, window: float, now: float | None = None) -> float:
        """Take one request slot in the sliding window shared by all replicas.

        Returns 0 when taken, else the seconds until one frees up (nothing is taken then). Never more than
        `limit` slots are taken in any `window` seconds, whichever replica asks, and none at all while the
        backend is blocked (`block_requests`).
        """
        now = time.time() if now is None else now
        async def body(tx: Conn) -> float:
            # The block, checked in the same transaction (and lock) as the window so no replica takes a slot after
            # one is recorded, and the window's use, in one statement (round trips count on PostgreSQL).
            blocked, used, oldest = await tx.fetchrow(
                "SELECT (SELECT blocked_until FROM request_blocks WHERE backend=?), "
                "(SELECT COUNT(*) FROM request_window WHERE backend=? AND ts > ?), "
                "(SELECT MIN(ts) FROM request_window WHERE backend=? AND ts > ?)",
                (self.backend, self.backend, now - window, self.backend, now - window))
            if blocked is not None and blocked > now:
                return blocked - now
            if used >= limit:
                return max(oldest + window - now, 0.001)
            await tx.execute("INSERT INTO request_window (backend, ts) VALUES (?,?)", (self.backend, now))
            if random.random() < PRUNE_CHANCE:
                await tx.execute("DELETE FROM request_window WHERE backend=? AND ts <= ?", (self.backend, now - window))
            return 0.0
        return await (await self._db()).transact(body, lock=f"request_window:{self.backend}")

    # --- the backend's own "wait" (429 Retry-After), shared by all replicas -------------------------------
    async def block_requests(self, seconds: float, now: float | None = None) -> float:
        """The backend told one replica to wait `seconds`: no replica takes a request slot until then.

        A block is only ever extended, never shortened (an earlier, longer Retry-After still stands). Returns
        the epoch time requests are blocked until. Non-finite or non-positive waits change nothing.
        """
        now = time.time() if now is None else now
        until = now + seconds if math.isfinite(seconds) and seconds > 0 else now
        async def body(tx: Conn) -> float:
            await tx.execute(
                "INSERT INTO request_blocks (backend, blocked_until) VALUES (?,?) ON CONFLICT (backend) DO UPDATE "
                "SET blocked_until = CASE WHEN request_blocks.blocked_until > excluded.blocked_until "
                "THEN request_blocks.blocked_until ELSE excluded.blocked_until END", (self.backend, until))
            # For operators (the dashboard's "last 429"): when the backend last said to wait, and how long.
            await tx.execute(
                "INSERT INTO last_rate_limited (backend, at, retry_after) VALUES (?,?,?) ON CONFLICT (backend) "
                "DO UPDATE SET at=excluded.at, retry_after=excluded.retry_after",
                (self.backend, now, seconds if math.isfinite(seconds) else 0.0))
            return await self._blocked_until(tx)
        return await (await self._db()).transact(body, lock=f"request_window:{self.backend}")

    async def blocked_until(self) -> float:
        """The epoch time before which no replica may call the backend (0 when it never said to wait)."""
        return await self._blocked_until(await self._db())

    async def last_rate_limited(self) -> tuple[float, float] | None:
        """(when, Retry-After seconds) of the backend's latest 429 with a Retry-After, any backend; None if never."""
        db = await self._db()
        row = await db.fetchrow("SELECT at, retry_after FROM last_rate_limited ORDER BY at DESC LIMIT 1")
        return (float(row[0]), float(row[1])) if row else None

    async def _blocked_until(self, db: Conn) -> float:
        value = await db.fetchval("SELECT blocked_until FROM request_blocks WHERE backend=?", (self.backend,))
        return float(value) if value is not None else 0.0
