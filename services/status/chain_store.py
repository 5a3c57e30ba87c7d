"""The chain's part of the job store: mints seen on chain, the watcher's block cursor and relayed mints.

Tables of their own beside `jobs` (same database as JobStore, either engine: mintpipe.db; made by the migration
0002_chain). A job's stage moves to
MINTED only here, in the same transaction that confirms its mint, and back to PINNED only when a reorg took
that mint away (the one exception to "stages never go backwards" the spec asks for).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mintpipe.db import Conn, Database
from mintpipe.v1 import jobs_pb2
from status.records import JobRecord
from status.store import JobStore


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
        """Nothing to make: the tables come with the store's migrations (mintpipe.migrations)."""

    @property
    def db(self) -> Database:
        return self.store.db

    async def _tx(self, statements: list[tuple[str, tuple]]) -> list[int]:
        async def body(tx: Conn) -> list[int]:  # one transaction; on SQLite one hop to the writer thread
            return [await tx.execute(sql, args) for sql, args in statements]
        return await self.db.transact(body)

    # --- mints --------------------------------------------------------------------------------------------
    async def mint(self, job_id: str) -> Mint | None:
        row = await self.db.fetchrow("SELECT * FROM mints WHERE job_id = ?", (job_id,))
        return _mint(row) if row else None

    async def mints_since(self, block: int) -> list[Mint]:
        return [_mint(r) for r in await self.db.fetch("SELECT * FROM mints WHERE block >= ? ORDER BY block", (block,))]

    async def unconfirmed(self) -> list[Mint]:
        return [_mint(r) for r in await self.db.fetch("SELECT * FROM mints WHERE confirmed = 0 ORDER BY block")]

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
            ("UPDATE jobs SET stage = ?, progress = 100, error = '', updated_at = "
             "CASE WHEN updated_at > ? THEN updated_at ELSE ? END "
             "WHERE job_id = ? AND stage = ? AND EXISTS (SELECT 1 FROM mints WHERE job_id = ?)",
             (jobs_pb2.STAGE_MINTED, now, now, job_id, jobs_pb2.STAGE_PINNED, job_id)),
        ])
        return await self.store.get(job_id) if changed else None

    async def undo(self, job_id: str) -> JobRecord | None:
        """A reorg took the mint away: forget it, and a MINTED job is PINNED again; the job if it changed."""
        now = time.time()
        _, changed = await self._tx([
            ("DELETE FROM mints WHERE job_id = ?", (job_id,)),
            ("UPDATE jobs SET stage = ?, updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END "
             "WHERE job_id = ? AND stage = ?", (jobs_pb2.STAGE_PINNED, now, now, job_id, jobs_pb2.STAGE_MINTED)),
        ])
        return await self.store.get(job_id) if changed else None

    # --- the watcher's cursor -----------------------------------------------------------------------------
    async def cursor(self, name: str = "watcher") -> tuple[int, str] | None:
        row = await self.db.fetchrow("SELECT block, block_hash FROM chain_cursor WHERE name = ?", (name,))
        return (row["block"], row["block_hash"]) if row else None

    async def set_cursor(self, block: int, block_hash: str, name: str = "watcher") -> None:
        await self._tx([(
            "INSERT INTO chain_cursor (name, block, block_hash, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT(name) DO UPDATE SET block=excluded.block, block_hash=excluded.block_hash, "
            "updated_at=excluded.updated_at", (name, block, block_hash, time.time()))])

    # --- relays -------------------------------------------------------------------------------------------
    async def relay(self, job_id: str) -> Relay | None:
        row = await self.db.fetchrow("SELECT * FROM relays WHERE job_id = ?", (job_id,))
        return Relay(**dict(row)) if row else None

    async def relays_since(self, since: float, wallet: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM relays WHERE created_at >= ?", [since]
        if wallet:
            sql += " AND wallet = ?"
            args.append(wallet)
        return int(await self.db.fetchval(sql, args))

    async def unminted_relays(self) -> list[Relay]:
        rows = await self.db.fetch(
            "SELECT r.* FROM relays r JOIN jobs j ON j.job_id = r.job_id WHERE j.stage != ? ORDER BY r.nonce",
            (jobs_pb2.STAGE_MINTED,))
        return [Relay(**dict(r)) for r in rows]

    async def max_relay_nonce(self, sender: str) -> int | None:
        return await self.db.fetchval("SELECT MAX(nonce) FROM relays WHERE sender = ?", (sender,))

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
