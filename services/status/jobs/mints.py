"""Status's record of the chain, from the minter's events (JobEvent.mint): confirmed mints (`mints`), what became
of each relay request (`relay_outcomes`). Status holds no key and speaks to no chain node: it applies facts.

A job moves to MINTED only here, in the transaction that records its mint, and back to PINNED only when the
minter says a reorg took the mint away and the contract agrees (the one exception to "stages never go backwards"
the spec asks for). Applying a fact twice changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mintpipe.db.core import Conn
from mintpipe.messaging.consumer import TransientError
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.bus import JobBus
from status.jobs.history import note_stage
from status.jobs.records import JobRecord
from status.jobs.store import JobStore

log = get_logger("status.mints")
Kind = broker_pb2.MintFact


@dataclass(frozen=True)
class Mint:
    job_id: str
    token_id: int
    tx_hash: str
    block: int
    minted_at: float | None


@dataclass(frozen=True)
class RelayOutcome:
    job_id: str
    state: str  # queued | sent | failed
    tx_hash: str
    http_status: int
    code: str
    message: str
    field: str
    updated_at: float


async def mint_of(store: JobStore, job_id: str) -> Mint | None:
    row = await store.db.fetchrow("SELECT job_id, token_id, tx_hash, block, minted_at FROM mints "
                                  "WHERE job_id = ? AND confirmed = 1", (job_id,))
    return Mint(row["job_id"], int(row["token_id"]), row["tx_hash"], row["block"], row["minted_at"]) if row else None


async def relay_outcome(store: JobStore, job_id: str) -> RelayOutcome | None:
    row = await store.db.fetchrow("SELECT * FROM relay_outcomes WHERE job_id = ?", (job_id,))
    return RelayOutcome(**{k: row[k] for k in RelayOutcome.__dataclass_fields__}) if row else None


async def set_relay_outcome(store: JobStore, job_id: str, state: str, *, tx_hash: str = "", http_status: int = 0,
                            code: str = "", message: str = "", field: str = "") -> None:
    async def body(tx: Conn) -> None:
        await tx.execute(
            "INSERT INTO relay_outcomes (job_id, state, tx_hash, http_status, code, message, field, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(job_id) DO UPDATE SET state = excluded.state, "
            "tx_hash = excluded.tx_hash, http_status = excluded.http_status, code = excluded.code, "
            "message = excluded.message, field = excluded.field, updated_at = excluded.updated_at",
            (job_id, state, tx_hash, http_status, code, message[:1000], field, time.time()))
    await store.db.transact(body)


async def apply_mint_fact(store: JobStore, bus: JobBus, event: broker_pb2.JobEvent) -> JobRecord | None:
    """Applies what the minter learned; the job when its stage changed."""
    fact = event.mint
    if fact.kind == Kind.KIND_RELAY_SENT:
        await set_relay_outcome(store, event.job_id, "sent", tx_hash=fact.tx_hash)
        return None
    if fact.kind == Kind.KIND_RELAY_FAILED:
        await set_relay_outcome(store, event.job_id, "failed", http_status=fact.http_status or 409, code=fact.code,
                                message=event.error, field=fact.field)
        return None
    record = await store.get(event.job_id)
    if record is None:
        log.warning("a mint fact for a job this store does not know", kind=Kind.Kind.Name(fact.kind))
        return None
    if fact.kind == Kind.KIND_MINTED:
        return await _minted(store, bus, record, event)
    if fact.kind == Kind.KIND_UNDONE:
        return await _undone(store, bus, record, fact)
    return None


async def _minted(store: JobStore, bus: JobBus, record: JobRecord, event: broker_pb2.JobEvent) -> JobRecord | None:
    fact = event.mint
    if record.wallet.lower() != fact.wallet.lower():
        log.warning("a mint to another wallet than the job's; ignored", token_id=fact.token_id)
        return None
    if record.stage not in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_MINTED):
        # Events are applied side by side: this job's `pinned` may still be on its way. Later, not lost.
        raise TransientError(f"minted before pinned was applied (stage {record.stage}); retried")
    now = time.time()

    async def body(tx: Conn) -> int:
        await tx.execute(
            "INSERT INTO mints (job_id, token_id, tx_hash, block, block_hash, confirmed, minted_at, seen_at) "
            "VALUES (?,?,?,?,?,1,?,?) ON CONFLICT(job_id) DO UPDATE SET token_id = excluded.token_id, "
            "tx_hash = excluded.tx_hash, block = excluded.block, block_hash = excluded.block_hash, confirmed = 1, "
            "minted_at = COALESCE(mints.minted_at, excluded.minted_at)",
            (record.job_id, fact.token_id, fact.tx_hash, fact.block, fact.block_hash, now, now))
        return await tx.execute(
            "UPDATE jobs SET stage = ?, progress = 100, error = '', updated_at = "
            "CASE WHEN updated_at > ? THEN updated_at ELSE ? END WHERE job_id = ? AND stage = ?",
            (jobs_pb2.STAGE_MINTED, now, now, record.job_id, jobs_pb2.STAGE_PINNED))
    changed = await store.db.transact(body)
    if not changed:
        return None
    updated = await store.get(record.job_id)
    if updated is not None:
        await note_stage(store, record.job_id, jobs_pb2.STAGE_MINTED, event.source, event.replica, "", changed=True)
        log.info("minted", job_id=record.job_id, token_id=fact.token_id, tx_hash=fact.tx_hash,
                 latency_s=round(now - record.created_at, 1))
        bus.publish(updated)
    return updated


async def _undone(store: JobStore, bus: JobBus, record: JobRecord, fact: broker_pb2.MintFact) -> JobRecord | None:
    now = time.time()

    async def body(tx: Conn) -> int:
        await tx.execute("DELETE FROM mints WHERE job_id = ?", (record.job_id,))
        await tx.execute("DELETE FROM relay_outcomes WHERE job_id = ? AND state = 'sent'", (record.job_id,))
        return await tx.execute(
            "UPDATE jobs SET stage = ?, updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END "
            "WHERE job_id = ? AND stage = ?", (jobs_pb2.STAGE_PINNED, now, now, record.job_id, jobs_pb2.STAGE_MINTED))
    changed = await store.db.transact(body)
    log.warning("mint undone by a reorg", job_id=record.job_id, tx_hash=fact.tx_hash, was_minted=bool(changed))
    if not changed:
        return None
    updated = await store.get(record.job_id)
    if updated is not None:
        bus.publish(updated)
    return updated
