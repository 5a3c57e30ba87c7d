"""The minter's tables (migration 0005_minter, either engine): relayed mints with their nonce fence, the mints
the watcher saw, and the watcher's block cursor.

The nonce fence: a relay's nonce is taken in the transaction that records it, under a lock named for the sender
(PostgreSQL: an advisory transaction lock; SQLite: its one writer), and UNIQUE(sender, nonce) refuses a second
relay with the same nonce even if two senders ever overlapped (a handover while the old one still finishes).
The day's caps (per wallet, overall, in wei) are counted in that same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mintpipe.db.core import Conn, Database

DAY = 86400.0


@dataclass(frozen=True)
class Relay:
    job_id: str
    wallet: str
    token_uri: str
    sender: str
    nonce: int
    tx_hash: str
    raw_tx: str
    max_fee: int
    gas: int
    deadline: int
    state: str  # sent | done | failed
    error: str
    attempts: int
    created_at: float
    sent_at: float


@dataclass(frozen=True)
class Caps:
    per_wallet: int
    daily: int
    daily_wei: int


class CapReached(Exception):
    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


class NonceTaken(Exception):
    """UNIQUE(sender, nonce) refused the insert: another relay holds this nonce."""


@dataclass(frozen=True)
class StoredMint:
    job_id: str
    token_id: int
    wallet: str
    tx_hash: str
    block: int
    block_hash: str
    state: str  # seen | minted | final


def _relay(row: Any) -> Relay:
    return Relay(**{k: row[k] for k in Relay.__dataclass_fields__})


def _mint(row: Any) -> StoredMint:
    return StoredMint(job_id=row["job_id"], token_id=int(row["token_id"]), wallet=row["wallet"],
                      tx_hash=row["tx_hash"], block=row["block"], block_hash=row["block_hash"], state=row["state"])


async def _check_caps(tx: Conn, relay: Relay, caps: Caps, since: float) -> None:
    row = await tx.fetchrow("SELECT COUNT(*) AS n, COALESCE(SUM(gas * max_fee), 0) AS wei "
                            "FROM minter_relays WHERE created_at >= ?", (since,))
    mine = await tx.fetchval("SELECT COUNT(*) FROM minter_relays WHERE created_at >= ? AND wallet = ?",
                             (since, relay.wallet))
    if int(mine) >= caps.per_wallet:
        raise CapReached("relay_cap", f"wallet: {relay.wallet} already had {caps.per_wallet} relayed mints "
                         "today; mint from a wallet (the job's `mint.tx`) or retry tomorrow", "wallet")
    if int(row["n"]) >= caps.daily:
        raise CapReached("relay_cap", "relay: the service's daily relayed mints are used up; mint from a "
                         "wallet (the job's `mint.tx`) or retry tomorrow", "relay")
    if int(row["wei"]) + relay.gas * relay.max_fee > caps.daily_wei:
        raise CapReached("relay_budget", "relay: the service's daily gas budget for relayed mints is "
                         "spent; mint from a wallet (the job's `mint.tx`) or retry tomorrow", "relay")


def _is_unique_violation(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "unique" in text or "duplicate key" in text


class MinterStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self) -> None:
        await self.db.open_migrated()

    async def close(self) -> None:
        await self.db.close()

    # --- relays -------------------------------------------------------------------------------------------
    async def relay(self, job_id: str) -> Relay | None:
        row = await self.db.fetchrow("SELECT * FROM minter_relays WHERE job_id = ?", (job_id,))
        return _relay(row) if row else None

    async def relays_in_flight(self) -> list[Relay]:
        rows = await self.db.fetch("SELECT * FROM minter_relays WHERE state = 'sent' ORDER BY nonce")
        return [_relay(r) for r in rows]

    async def take_relay(self, relay: Relay, caps: Caps | None, node_nonce: int,
                         sign: Callable[[int], tuple[str, str]], renew_from: str | None = None) -> tuple[Relay, bool]:
        """Records a relay with the next nonce (the larger of the node's pending count and ours + 1) and its
        transaction signed for that nonce (`sign(nonce) -> (tx_hash, raw_tx)`), the caps counted in the same
        transaction. A new relay (`renew_from` None) returns the job's existing one if there is any; a renewal
        (the relay whose transaction is `renew_from` could never be mined: expired, or its nonce used) takes a
        new nonce and counts no cap again. (relay, taken now). CapReached when a cap is spent; NonceTaken if
        the fence refused it (the caller tries again)."""
        since = relay.created_at - DAY

        async def body(tx: Conn) -> tuple[Relay, bool]:
            existing = await tx.fetchrow("SELECT * FROM minter_relays WHERE job_id = ?", (relay.job_id,))
            if existing is not None and (renew_from is None or existing["tx_hash"] != renew_from):
                return _relay(existing), False
            if existing is None and caps is not None:
                await _check_caps(tx, relay, caps, since)
            top = await tx.fetchval("SELECT MAX(nonce) FROM minter_relays WHERE sender = ?", (relay.sender,))
            nonce = max(node_nonce, int(top) + 1 if top is not None else 0)
            tx_hash, raw_tx = sign(nonce)
            attempts = existing["attempts"] + 1 if existing is not None else 1
            taken = Relay(**{**relay.__dict__, "nonce": nonce, "tx_hash": tx_hash, "raw_tx": raw_tx,
                             "attempts": attempts, "state": "sent", "error": ""})
            if existing is not None:
                await tx.execute("UPDATE minter_relays SET nonce = ?, tx_hash = ?, raw_tx = ?, max_fee = ?, gas = ?, "
                                 "deadline = ?, state = 'sent', error = '', attempts = ?, sent_at = ? "
                                 "WHERE job_id = ?", (nonce, tx_hash, raw_tx, taken.max_fee, taken.gas,
                                                      taken.deadline, attempts, taken.sent_at, taken.job_id))
            else:
                await tx.execute(
                    "INSERT INTO minter_relays (job_id, wallet, token_uri, sender, nonce, tx_hash, raw_tx, max_fee, "
                    "gas, deadline, state, error, attempts, created_at, sent_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (taken.job_id, taken.wallet, taken.token_uri, taken.sender, taken.nonce, taken.tx_hash,
                     taken.raw_tx, taken.max_fee, taken.gas, taken.deadline, taken.state, taken.error,
                     taken.attempts, taken.created_at, taken.sent_at))
            return taken, True

        try:
            return await self.db.transact(body, lock=f"minter-relay:{relay.sender.lower()}")
        except CapReached:
            raise
        except Exception as exc:
            if _is_unique_violation(exc):
                raise NonceTaken(str(exc)) from None
            raise

    async def update_relay(self, job_id: str, expected_tx: str, **changes: Any) -> bool:
        """Compare-and-set on the relay's current transaction: False if someone changed it meanwhile."""
        if "sent_at" not in changes and "tx_hash" in changes:
            changes["sent_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in changes)

        async def body(tx: Conn) -> int:
            return await tx.execute(f"UPDATE minter_relays SET {sets} WHERE job_id = ? AND tx_hash = ?",
                                    (*changes.values(), job_id, expected_tx))
        try:
            return bool(await self.db.transact(body))
        except Exception as exc:
            if _is_unique_violation(exc):
                raise NonceTaken(str(exc)) from None
            raise

    # --- mints the watcher saw ----------------------------------------------------------------------------
    async def mint(self, job_id: str) -> StoredMint | None:
        row = await self.db.fetchrow("SELECT * FROM minter_mints WHERE job_id = ?", (job_id,))
        return _mint(row) if row else None

    async def open_mints(self) -> list[StoredMint]:
        """Mints not yet final: re-checked every round until the chain's finality passes them."""
        rows = await self.db.fetch("SELECT * FROM minter_mints WHERE state != 'final' ORDER BY block")
        return [_mint(r) for r in rows]

    async def record_mint(self, mint: Any) -> StoredMint:
        """A mint seen in a block. Seeing it again, or in another block after a reorg, moves it; a mint already
        minted keeps its state (the caller re-checks it)."""
        async def body(tx: Conn) -> None:
            await tx.execute(
                "INSERT INTO minter_mints (job_id, token_id, wallet, tx_hash, block, block_hash, state, seen_at) "
                "VALUES (?,?,?,?,?,?,'seen',?) ON CONFLICT(job_id) DO UPDATE SET token_id = excluded.token_id, "
                "wallet = excluded.wallet, tx_hash = excluded.tx_hash, block = excluded.block, "
                "block_hash = excluded.block_hash",
                (mint.job_id, str(mint.token_id), mint.wallet, mint.tx_hash, mint.block, mint.block_hash,
                 time.time()))
        await self.db.transact(body)
        stored = await self.mint(mint.job_id)
        assert stored is not None
        return stored

    async def set_mint_state(self, job_id: str, state: str) -> None:
        await self.db.execute("UPDATE minter_mints SET state = ?, confirmed_at = COALESCE(confirmed_at, ?) "
                              "WHERE job_id = ?", (state, time.time(), job_id))

    async def forget_mint(self, job_id: str) -> None:
        await self.db.execute("DELETE FROM minter_mints WHERE job_id = ?", (job_id,))

    # --- the watcher's cursor -----------------------------------------------------------------------------
    async def cursor(self, name: str = "minter") -> tuple[int, str] | None:
        row = await self.db.fetchrow("SELECT block, block_hash FROM chain_cursor WHERE name = ?", (name,))
        return (row["block"], row["block_hash"]) if row else None

    async def set_cursor(self, block: int, block_hash: str, name: str = "minter") -> None:
        await self.db.execute(
            "INSERT INTO chain_cursor (name, block, block_hash, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT(name) DO UPDATE SET block=excluded.block, block_hash=excluded.block_hash, "
            "updated_at=excluded.updated_at", (name, block, block_hash, time.time()))

    # --- replicas (the operators' overview) -----------------------------------------------------------------
    async def heartbeat(self, name: str, *, watching: bool, sending: bool, relayer: str, head: int,
                        started_at: float) -> None:
        await self.db.execute(
            "INSERT INTO minter_replicas (name, watching, sending, relayer, head, started_at, seen_at) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET watching = excluded.watching, "
            "sending = excluded.sending, relayer = excluded.relayer, head = excluded.head, "
            "started_at = excluded.started_at, seen_at = excluded.seen_at",
            (name, int(watching), int(sending), relayer, head, started_at, time.time()))

    async def replicas(self, within: float = 60.0) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT * FROM minter_replicas WHERE seen_at >= ? ORDER BY name",
                                   (time.time() - within,))
        return [dict(r) for r in rows]

    async def forget_replica(self, name: str) -> None:
        await self.db.execute("DELETE FROM minter_replicas WHERE name = ?", (name,))
