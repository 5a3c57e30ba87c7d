"""Status's record of the chain, the minter's relays and the operators' history on both engines (SQLite,
PostgreSQL): what the minter, the bridge and the dashboard read back is what was written, the nonce fence and the
caps hold, and one job's concurrent events record each stage once."""

from __future__ import annotations

import asyncio
import time

import pytest

from minter.store import CapReached, Caps, MinterStore, NonceTaken, Relay
from mintpipe.db.core import database_for
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs import history
from status.jobs.bus import JobBus
from status.jobs.mints import apply_mint_fact, mint_of, relay_outcome
from status.jobs.service import apply_and_announce
from status.jobs.store import JobStore

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"
Kind = broker_pb2.MintFact


@pytest.fixture
def store(job_store: JobStore) -> JobStore:  # tests/support/postgres.py: the store on each engine
    return job_store


async def pinned_job(store: JobStore, key: str) -> str:
    job, _ = await store.reserve(key, "h" * 64, WALLET, "gen1", "{}")
    await store.apply(broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_PINNED, progress=100))
    return job.job_id


def mint_fact(job_id: str, kind: int, token_id: int = 2**200, tx: str = "0xtx1", block: int = 10):
    return broker_pb2.JobEvent(job_id=job_id, stage=jobs_pb2.STAGE_MINTED if kind == Kind.KIND_MINTED else
                               jobs_pb2.STAGE_PINNED, source="minter", replica="m1", mint=broker_pb2.MintFact(
                                   kind=kind, token_id=str(token_id), wallet=WALLET, tx_hash=tx, block=block))


async def test_a_minted_fact_makes_the_job_minted_once_and_an_undone_one_pins_it_again(store):
    job_id = await pinned_job(store, "k1")
    bus = JobBus()
    minted = await apply_mint_fact(store, bus, mint_fact(job_id, Kind.KIND_MINTED))
    assert minted is not None and minted.stage == jobs_pb2.STAGE_MINTED
    mint = await mint_of(store, job_id)
    assert mint.token_id == 2**200 and mint.tx_hash == "0xtx1" and mint.minted_at is not None  # uint256 as text
    assert await apply_mint_fact(store, bus, mint_fact(job_id, Kind.KIND_MINTED)) is None, "twice: no change"
    back = await apply_mint_fact(store, bus, mint_fact(job_id, Kind.KIND_UNDONE))
    assert back is not None and back.stage == jobs_pb2.STAGE_PINNED and await mint_of(store, job_id) is None
    # A relay's outcomes read back for the bridge.
    await apply_mint_fact(store, bus, broker_pb2.JobEvent(job_id=job_id, stage=jobs_pb2.STAGE_PINNED, error="why",
                                                          mint=broker_pb2.MintFact(kind=Kind.KIND_RELAY_FAILED,
                                                                                   http_status=429, code="relay_cap",
                                                                                   field="wallet")))
    outcome = await relay_outcome(store, job_id)
    assert (outcome.state, outcome.http_status, outcome.code, outcome.message) == ("failed", 429, "relay_cap", "why")


async def test_the_relay_nonce_fence_and_the_caps_hold_on_both_engines(store):
    minter = MinterStore(store.db)  # the same database, the minter's tables (migration 0005)
    caps = Caps(per_wallet=2, daily=3, daily_wei=10**18)

    def relay(job_id: str, wallet: str = WALLET) -> Relay:
        return Relay(job_id=job_id, wallet=wallet, token_uri="ipfs://x", sender="0xs", nonce=-1, tx_hash="",
                     raw_tx="", max_fee=10**9, gas=200_000, deadline=0, state="sent", error="", attempts=1,
                     created_at=time.time(), sent_at=time.time())

    def signer(tag: str):
        return lambda nonce: (f"0x{tag}{nonce}", f"0xraw{tag}{nonce}")

    first, taken = await minter.take_relay(relay("j1"), caps, 5, signer("a"))
    assert taken and first.nonce == 5 and first.tx_hash == "0xa5"  # the node's pending count was ahead
    again, taken = await minter.take_relay(relay("j1"), caps, 0, signer("b"))
    assert not taken and again == first  # one relay per job
    second, _ = await minter.take_relay(relay("j2"), caps, 0, signer("c"))
    assert second.nonce == 6  # ours + 1, above the node's count
    with pytest.raises(CapReached, match="wallet"):
        await minter.take_relay(relay("j3"), caps, 0, signer("d"))
    third, _ = await minter.take_relay(relay("j3", "0x" + "1" * 40), caps, 0, signer("e"))
    with pytest.raises(CapReached, match="daily relayed mints"):
        await minter.take_relay(relay("j4", "0x" + "2" * 40), caps, 0, signer("f"))
    # The fence: a second relay with the same sender and nonce is refused by the database itself.
    with pytest.raises(NonceTaken):
        await minter.update_relay("j3", third.tx_hash, nonce=first.nonce)
    renewed, taken = await minter.take_relay(relay("j1"), caps, 0, signer("g"), renew_from=first.tx_hash)
    assert taken and renewed.nonce == 8 and renewed.attempts == 2  # a new nonce, no cap counted again
    assert [r.job_id for r in await minter.relays_in_flight()] == ["j2", "j3", "j1"]


async def test_concurrent_events_of_one_job_record_each_stage_once(store):
    job, _ = await store.reserve("k1", "h" * 64, WALLET, "gen1", "{}")
    events = [broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_RENDERING, progress=p, source="renderer",
                                  replica="r1") for p in range(5, 60, 5)]
    events += [broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_RENDERED, progress=70, source="renderer",
                                   replica="r1")]
    bus = JobBus()
    # All at once, as the consumer's prefetch (and, on PostgreSQL, several replicas) would apply them.
    await asyncio.gather(*(apply_and_announce(store, bus, e) for e in events))
    stages = await history.stage_history(store, job.job_id)
    assert [h["stage"] for h in stages] == [jobs_pb2.STAGE_RENDERING, jobs_pb2.STAGE_RENDERED]
    assert stages[0]["replica"] == "r1" and stages[0]["source"] == "renderer"
    assert (await store.get(job.job_id)).stage == jobs_pb2.STAGE_RENDERED


async def test_retries_dead_letters_and_the_audit_read_back(store):
    job_id = await pinned_job(store, "k1")
    await history.note_retry(store, job_id, jobs_pb2.STAGE_PINNING, 2, 30, "pinata 503", "pinner", "p1")
    assert [(r["attempt"], r["reason"]) for r in await history.retry_history(store, job_id)] == [(2, "pinata 503")]
    await history.note_dead_letter(store, job_id, "pin", "m1", "rejected", "pinner")
    assert set(await history.open_dead_letters(store, [job_id])) == {job_id}
    assert set(await history.oldest_open_dead_letter(store)) == {"pin"}
    await history.note_replayed(store, "pin", ["m1"])
    assert await history.open_dead_letters(store, [job_id]) == {}
    assert (await history.dead_letter_history(store, job_id))[0]["replayed_at"] is not None
    for n in range(3):
        await history.audit(store, history.AuditEntry("ops", "replay", job_id, "ok", {"n": n}))
    page = await history.audit_page(store, limit=2)
    assert [e["detail"]["n"] for e in page] == [2, 1]
    older = await history.audit_page(store, limit=5, before=page[-1]["id"])
    assert [e["detail"]["n"] for e in older] == [0]


async def test_reserving_one_key_from_two_connections_at_once_makes_one_job(tmp_path, db_url):
    """Two replicas (two stores, two connections) take the same idempotency key at the same moment."""
    stores = [JobStore(database_for(db_url, tmp_path / "jobs.sqlite3")) for _ in range(2)]
    for s in stores:
        await s.open()
    try:
        got = await asyncio.gather(*(stores[n % 2].reserve("same", "h" * 64, WALLET, "gen1", "{}") for n in range(8)))
    finally:
        for s in stores:
            await s.close()
    assert len({record.job_id for record, _ in got}) == 1
    assert sum(created for _, created in got) == 1


async def test_two_replicas_applying_one_jobs_events_at_once_lose_none(tmp_path, db_url):
    """Two status replicas (two stores, two connections or pools) take one job's events off the queue at once."""
    stores = [JobStore(database_for(db_url, tmp_path / "jobs.sqlite3")) for _ in range(2)]
    for s in stores:
        await s.open()
    try:
        job, _ = await stores[0].reserve("k1", "h" * 64, WALLET, "gen1", "{}")
        stages = [(jobs_pb2.STAGE_RENDERING, p) for p in range(5, 60, 5)]
        stages += [(jobs_pb2.STAGE_RENDERED, 70), (jobs_pb2.STAGE_PINNING, 80), (jobs_pb2.STAGE_PINNING, 90)]
        events = [broker_pb2.JobEvent(job_id=job.job_id, stage=s, progress=p, source="r", replica="r1")
                  for s, p in stages]
        bus = JobBus()
        await asyncio.gather(*(apply_and_announce(stores[n % 2], bus, e) for n, e in enumerate(events)))
        final = await stores[1].get(job.job_id)
        recorded = [h["stage"] for h in await history.stage_history(stores[0], job.job_id)]
    finally:
        for s in stores:
            await s.close()
    # Whatever the interleaving, the furthest event wins and each stage reached is recorded once.
    assert (final.stage, final.state.progress) == (jobs_pb2.STAGE_PINNING, 90)
    # (Which stages are reached depends on the interleaving: a late RENDERED after PINNING changes nothing.)
    assert len(recorded) == len(set(recorded)) and jobs_pb2.STAGE_PINNING in recorded, recorded
