"""The pin ledger: what has been pinned where, the monthly budget, the request window to the pinning backend
and any wait the backend asked for (429 Retry-After), shared by every pinner replica and the gateway through
one SQLite file on the shared volume.

Why SQLite: the limit and the budget must hold across processes (not per replica), the data is tiny, and the
file already lives beside the artifacts every replica mounts. Each operation is one short BEGIN IMMEDIATE
transaction, so replicas serialise on the file lock, never on each other's work.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

PINS_PER_JOB = 4  # GIF, MP4, PNG, metadata
RESERVATION_TTL = 3600.0  # a job that never reaches the pinner stops holding budget after this

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pins (
    backend TEXT NOT NULL, cid TEXT NOT NULL, size INTEGER NOT NULL, job_id TEXT NOT NULL,
    pinned_at REAL NOT NULL, month TEXT NOT NULL, PRIMARY KEY (backend, cid));
CREATE INDEX IF NOT EXISTS pins_month ON pins (backend, month);
CREATE TABLE IF NOT EXISTS pinned_settings (backend TEXT NOT NULL, settings_hash TEXT NOT NULL,
    PRIMARY KEY (backend, settings_hash));
CREATE TABLE IF NOT EXISTS reservations (job_id TEXT PRIMARY KEY, pins INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS request_window (backend TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS request_window_ts ON request_window (backend, ts);
CREATE TABLE IF NOT EXISTS request_blocks (backend TEXT PRIMARY KEY, blocked_until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS job_results (job_id TEXT PRIMARY KEY, token_uri TEXT NOT NULL, assets_json TEXT NOT NULL,
    pinned_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS last_rate_limited (backend TEXT PRIMARY KEY, at REAL NOT NULL, retry_after REAL NOT NULL);
CREATE TABLE IF NOT EXISTS upload_claims (backend TEXT NOT NULL, cid TEXT NOT NULL, owner TEXT NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (backend, cid));
"""


def month_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m")


class _KeptConnection(sqlite3.Connection):
    """A connection its thread keeps (PinLedger._connect): close() rolls back what a failed call left open."""

    def close(self) -> None:
        if self.in_transaction:
            self.rollback()


class PinLedger:
    def __init__(self, path: Path, backend: str = "") -> None:
        self.path = Path(path)
        self.backend = backend
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # One connection per thread, kept: opening one (and its two PRAGMAs) for each call was ~0.5 ms of CPU,
        # ~20 calls a job in the pinner (bench/job_cost.py, "pin"). close() on it only ends an unfinished
        # transaction (_KeptConnection), so the callers' try/finally blocks keep their meaning.
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, factory=_KeptConnection)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    def _tx(self) -> sqlite3.Connection:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        return db

    # --- what is pinned -------------------------------------------------------------------------------
    def is_pinned(self, cid: str) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT 1 FROM pins WHERE backend=? AND cid=?", (self.backend, cid)).fetchone()
        return row is not None

    def record_pin(self, cid: str, size: int, job_id: str, now: float | None = None) -> bool:
        """Remember a pin; False when it was already known (then it cost nothing)."""
        now = time.time() if now is None else now
        db = self._tx()
        try:
            cur = db.execute("INSERT OR IGNORE INTO pins VALUES (?,?,?,?,?,?)",
                             (self.backend, cid, size, job_id, now, month_of(now)))
            db.execute("COMMIT")
            return cur.rowcount == 1
        finally:
            db.close()

    def record_job_pinned(self, job_id: str, settings_hash: str) -> None:
        db = self._tx()
        try:
            db.execute("INSERT OR IGNORE INTO pinned_settings VALUES (?,?)", (self.backend, settings_hash))
            db.execute("DELETE FROM reservations WHERE job_id=?", (job_id,))
            db.execute("COMMIT")
        finally:
            db.close()

    def record_job_result(self, job_id: str, token_uri: str, assets: dict[str, str]) -> None:
        """What a pinned job was announced with, so a late duplicate of its pin job (whose rendered files may be
        gone by then, see status.artifact_sweeper) announces the same again instead of failing."""
        db = self._tx()
        try:
            db.execute("INSERT OR REPLACE INTO job_results VALUES (?,?,?,?)",
                       (job_id, token_uri, json.dumps(assets, sort_keys=True), time.time()))
            db.execute("COMMIT")
        finally:
            db.close()

    def job_result(self, job_id: str) -> tuple[str, dict[str, str]] | None:
        with self._connect() as db:
            row = db.execute("SELECT token_uri, assets_json FROM job_results WHERE job_id=?", (job_id,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def pins_this_month(self, now: float | None = None) -> int:
        """Pins made this (UTC) month, whichever backend: the budget is the deployment's."""
        now = time.time() if now is None else now
        with self._connect() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM pins WHERE month=?", (month_of(now),)).fetchone()
        return int(count)

    # --- one uploader per CID ------------------------------------------------------------------------------
    def claim_upload(self, cid: str, owner: str, ttl: float, now: float | None = None) -> float:
        """Claim (or renew) the right to upload `cid`: 0 when `owner` holds it, else the seconds until the
        other holder's claim lapses. A redelivered message can run on two replicas at once; without this
        both see the CID as not pinned yet and both upload it. The claim lapses by itself if its holder dies."""
        now = time.time() if now is None else now
        db = self._tx()
        try:
            row = db.execute("SELECT owner, expires FROM upload_claims WHERE backend=? AND cid=?",
                             (self.backend, cid)).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                db.execute("COMMIT")
                return max(row[1] - now, 0.001)
            db.execute("INSERT OR REPLACE INTO upload_claims VALUES (?,?,?,?)", (self.backend, cid, owner, now + ttl))
            db.execute("COMMIT")
            return 0.0
        finally:
            db.close()

    def release_upload(self, cid: str, owner: str) -> None:
        db = self._tx()
        try:
            db.execute("DELETE FROM upload_claims WHERE backend=? AND cid=? AND owner=?", (self.backend, cid, owner))
            db.execute("COMMIT")
        finally:
            db.close()

    # --- the budget -----------------------------------------------------------------------------------
    def reserve_budget(self, job_id: str, settings_hash: str, budget: int,
                       now: float | None = None) -> tuple[bool, int, int]:
        """Hold this job's pins against the month's budget: (granted, used, held by jobs in flight).

        Settings already pinned cost nothing (same bytes, same CIDs), so they are always granted.
        """
        now = time.time() if now is None else now
        db = self._tx()
        try:
            db.execute("DELETE FROM reservations WHERE created_at < ?", (now - RESERVATION_TTL,))
            known = db.execute("SELECT 1 FROM pinned_settings WHERE settings_hash=?", (settings_hash,)).fetchone()
            (used,) = db.execute("SELECT COUNT(*) FROM pins WHERE month=?", (month_of(now),)).fetchone()
            (held,) = db.execute("SELECT COALESCE(SUM(pins), 0) FROM reservations WHERE job_id != ?",
                                 (job_id,)).fetchone()
            granted = bool(known) or used + held + PINS_PER_JOB <= budget
            if granted and not known:
                db.execute("INSERT OR REPLACE INTO reservations VALUES (?,?,?)", (job_id, PINS_PER_JOB, now))
            db.execute("COMMIT")
            return granted, int(used), int(held)
        finally:
            db.close()

    # --- the shared request window ----------------------------------------------------------------------
    def acquire_request_slot(self, limit: int, window: float, now: float | None = None) -> float:
        """Take one request slot in the sliding window shared by all replicas.

        Returns 0 when taken, else the seconds until one frees up (nothing is taken then). Never more than
        `limit` slots are taken in any `window` seconds, whichever replica asks, and none at all while the
        backend is blocked (`block_requests`).
        """
        now = time.time() if now is None else now
        db = self._tx()
        try:
            # Checked in the same transaction as the window: no replica takes a slot after a block is recorded.
            blocked = self._blocked_until(db)
            if blocked > now:
                db.execute("COMMIT")
                return blocked - now
            db.execute("DELETE FROM request_window WHERE backend=? AND ts <= ?", (self.backend, now - window))
            rows = db.execute("SELECT ts FROM request_window WHERE backend=? ORDER BY ts LIMIT ?",
                              (self.backend, limit)).fetchall()
            if len(rows) < limit:
                db.execute("INSERT INTO request_window VALUES (?,?)", (self.backend, now))
                db.execute("COMMIT")
                return 0.0
            db.execute("COMMIT")
            return max(rows[0][0] + window - now, 0.001)
        finally:
            db.close()

    # --- the backend's own "wait" (429 Retry-After), shared by all replicas -------------------------------
    def block_requests(self, seconds: float, now: float | None = None) -> float:
        """The backend told one replica to wait `seconds`: no replica takes a request slot until then.

        A block is only ever extended, never shortened (an earlier, longer Retry-After still stands). Returns
        the epoch time requests are blocked until. Non-finite or non-positive waits change nothing.
        """
        now = time.time() if now is None else now
        until = now + seconds if math.isfinite(seconds) and seconds > 0 else now
        db = self._tx()
        try:
            db.execute("INSERT INTO request_blocks VALUES (?,?) ON CONFLICT (backend) DO UPDATE "
                       "SET blocked_until = max(blocked_until, excluded.blocked_until)", (self.backend, until))
            # For operators (the dashboard's "last 429"): when the backend last said to wait, and how long.
            db.execute("INSERT OR REPLACE INTO last_rate_limited VALUES (?,?,?)",
                       (self.backend, now, seconds if math.isfinite(seconds) else 0.0))
            until = self._blocked_until(db)
            db.execute("COMMIT")
            return until
        finally:
            db.close()

    def blocked_until(self) -> float:
        """The epoch time before which no replica may call the backend (0 when it never said to wait)."""
        with self._connect() as db:
            return self._blocked_until(db)

    def last_rate_limited(self) -> tuple[float, float] | None:
        """(when, Retry-After seconds) of the backend's latest 429 with a Retry-After, any backend; None if never."""
        with self._connect() as db:
            row = db.execute("SELECT at, retry_after FROM last_rate_limited ORDER BY at DESC LIMIT 1").fetchone()
        return (float(row[0]), float(row[1])) if row else None

    def _blocked_until(self, db: sqlite3.Connection) -> float:
        row = db.execute("SELECT blocked_until FROM request_blocks WHERE backend=?", (self.backend,)).fetchone()
        return float(row[0]) if row else 0.0
