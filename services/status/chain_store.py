"""The chain's part of the job store: mints seen on chain, the watcher's block cursor and relayed mints.

Tables of their own beside `jobs` (same SQLite file and connection as JobStore). A job's stage moves to
MINTED only here, in the same transaction that confirms its mint, and back to PINNED only when a reorg took
that mint away (the one exception to "stages never go backwards" the spec asks for).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mintpipe.v1 import jobs_pb2
from status.records import JobRecord
from status.store import JobStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS mints (
    job_id TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    minted_at REAL,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS mints_block ON mints (block);
CREATE TABLE IF NOT EXISTS chain_cursor (
    name TEXT PRIMARY KEY,
    block INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS relays (
    job_id TEXT PRIMARY KEY,
    wallet TEXT NOT NULL,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    raw_tx TEXT NOT NULL,
    max_fee INTEGER NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS relays_wallet ON relays (wallet, created_at);
CREATE INDEX IF NOT EXISTS relays_created ON relays (created_at);
"""


@dataclass(frozen=True)
class Mint:
    job_id: str
    token_id: int
    tx_hash: str
    block: int
    block_hash: str
    confirmed: bool
    minted_at: float | None


@dataclass(frozen=True)
class Relay:
    job_id: str
    wallet: str
    sender: str
    nonce: int
    tx_hash: str
    raw_tx: str
    max_fee: int
    created_at: float
    sent_at: float


class ChainStore:
    def __init__(self, store: JobStore) -> None:
        self.store = store

    async def open(self) -> None:
        await self.store.db.executescript(SCHEMA)

    async def _tx(self, statements: list[tuple[str, tuple]]) -> list[int]:
        async with self.store._lock:
            await self.store.db.execute("BEGIN IMMEDIATE")
            try:
                counts = [(await self.store.db.execute(sql, args)).rowcount for sql, args in statements]
                await self.store.db.execute("COMMIT")
            except BaseException:
                await self.store.db.execute("ROLLBACK")
                raise
        return counts

    # --- mints --------------------------------------------------------------------------------------------
    async def mint(self, job_id: str) -> Mint | None:
        async with self.store.db.execute("SELECT * FROM mints WHERE job_id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        return _mint(row) if row else None

    async def mints_since(self, block: int) -> list[Mint]:
        async with self.store.db.execute("SELECT * FROM mints WHERE block >= ? ORDER BY block", (block,)) as cur:
            return [_mint(r) for r in await cur.fetchall()]

    async def unconfirmed(self) -> list[Mint]:
        async with self.store.db.execute("SELECT * FROM mints WHERE confirmed = 0 ORDER BY block") as cur:
            return [_mint(r) for r in await cur.fetchall()]

    async def record(self, job_id: str, token_id: int, tx_hash: str, block: int, block_hash: str) -> None:
        """A mint seen in a block (not yet confirmed). Seeing it again, or in another block after a reorg,
        only moves it: one row per job, as the contract mints one token per job."""
        await self._tx([(
            "INSERT INTO mints (job_id, token_id, tx_hash, block, block_hash, seen_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(job_id) DO UPDATE SET token_id=excluded.token_id, tx_hash=excluded.tx_hash, "
            "block=excluded.block, block_hash=excluded.block_hash",
            (job_id, str(token_id), tx_hash, block, block_hash, time.time()))])

    async def confirm(self, job_id: str) -> JobRecord | None:
        """Marks the mint confirmed and the job MINTED; the job if it changed."""
        now = time.time()
        _, changed = await self._tx([
            ("UPDATE mints SET confirmed = 1, minted_at = COALESCE(minted_at, ?) WHERE job_id = ?", (now, job_id)),
            ("UPDATE jobs SET stage = ?, progress = 100, error = '', updated_at = MAX(updated_at, ?) "
             "WHERE job_id = ? AND stage = ? AND EXISTS (SELECT 1 FROM mints WHERE job_id = ?)",
             (jobs_pb2.STAGE_MINTED, now, job_id, jobs_pb2.STAGE_PINNED, job_id)),
        ])
        return await self.store.get(job_id) if changed else None

    async def undo(self, job_id: str) -> JobRecord | None:
        """A reorg took the mint away: forget it, and a MINTED job is PINNED again; the job if it changed."""
        _, changed = await self._tx([
            ("DELETE FROM mints WHERE job_id = ?", (job_id,)),
            ("UPDATE jobs SET stage = ?, updated_at = MAX(updated_at, ?) WHERE job_id = ? AND stage = ?",
             (jobs_pb2.STAGE_PINNED, time.time(), job_id, jobs_pb2.STAGE_MINTED)),
        ])
        return await self.store.get(job_id) if changed else None

    # --- the watcher's cursor -----------------------------------------------------------------------------
    async def cursor(self, name: str = "watcher") -> tuple[int, str] | None:
        async with self.store.db.execute("SELECT block, block_hash FROM chain_cursor WHERE name = ?", (name,)) as c:
            row = await c.fetchone()
        return (row["block"], row["block_hash"]) if row else None

    async def set_cursor(self, block: int, block_hash: str, name: str = "watcher") -> None:
        await self._tx([(
            "INSERT INTO chain_cursor (name, block, block_hash, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT(name) DO UPDATE SET block=excluded.block, block_hash=excluded.block_hash, "
            "updated_at=excluded.updated_at", (name, block, block_hash, time.time()))])

    # --- relays -------------------------------------------------------------------------------------------
    async def relay(self, job_id: str) -> Relay | None:
        async with self.store.db.execute("SELECT * FROM relays WHERE job_id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        return Relay(**dict(row)) if row else None

    async def relays_since(self, since: float, wallet: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM relays WHERE created_at >= ?", [since]
        if wallet:
            sql += " AND wallet = ?"
            args.append(wallet)
        async with self.store.db.execute(sql, args) as cur:
            return (await cur.fetchone())[0]

    async def unminted_relays(self) -> list[Relay]:
        async with self.store.db.execute(
            "SELECT r.* FROM relays r JOIN jobs j ON j.job_id = r.job_id WHERE j.stage != ? ORDER BY r.nonce",
            (jobs_pb2.STAGE_MINTED,),
        ) as cur:
            return [Relay(**dict(r)) for r in await cur.fetchall()]

    async def max_relay_nonce(self, sender: str) -> int | None:
        async with self.store.db.execute("SELECT MAX(nonce) FROM relays WHERE sender = ?", (sender,)) as cur:
            return (await cur.fetchone())[0]

    async def add_relay(self, relay: Relay) -> None:
        await self._tx([("INSERT INTO relays (job_id, wallet, sender, nonce, tx_hash, raw_tx, max_fee, created_at, "
                         "sent_at) VALUES (?,?,?,?,?,?,?,?,?)",
                         (relay.job_id, relay.wallet, relay.sender, relay.nonce, relay.tx_hash, relay.raw_tx,
                          relay.max_fee, relay.created_at, relay.sent_at))])

    async def replace_relay(self, job_id: str, tx_hash: str, raw_tx: str, max_fee: int) -> None:
        await self._tx([("UPDATE relays SET tx_hash = ?, raw_tx = ?, max_fee = ?, sent_at = ? WHERE job_id = ?",
                         (tx_hash, raw_tx, max_fee, time.time(), job_id))])


def _mint(row) -> Mint:  # type: ignore[no-untyped-def]
    return Mint(job_id=row["job_id"], token_id=int(row["token_id"]), tx_hash=row["tx_hash"], block=row["block"],
                block_hash=row["block_hash"], confirmed=bool(row["confirmed"]), minted_at=row["minted_at"])
