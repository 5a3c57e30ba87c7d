"""The chain store and the operators' history on both engines (SQLite, PostgreSQL): what the watcher, the relayer
and the dashboard read back is what was written, and one job's concurrent events record each stage once."""

from __future__ import annotations

import asyncio

import pytest

from mintpipe.db import database_for
from mintpipe.v1 import broker_pb2, jobs_pb2
from status import ops_store
from status.bus import JobBus
from status.chain_store import ChainStore, Relay
from status.consumer import apply_and_announce
from status.store import JobStore

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture
def store(job_store: JobStore) -> JobStore:  # tests/support/postgres.py: the store on each engine
    return job_store


async def pinned_job(store: JobStore, key: str) -> str:
    job, _ = await store.reserve(key, "h" * 64, WALLET, "gen1", "{}")
    await store.apply(broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_PINNED, progress=100))
    return job.job_id


async def test_a_confirmed_mint_makes_the_job_minted_and_a_reorg_undoes_it(store):
    chain = ChainStore(store)
    await chain.open()
    job_id = await pinned_job(store, "k1")
    await chain.record(job_id, 2**200, "0xtx1", 10, "0xb10")  # token ids are uint256: kept as text
    await chain.record(job_id, 2**200, "0xtx1", 11, "0xb11")  # seen again in another block after a reorg
    assert [m.block for m in await chain.mints_since(0)] == [11]
    assert [m.job_id for m in await chain.unconfirmed()] == [job_id]
    minted = await chain.confirm(job_id)
    assert minted is not None and minted.stage == jobs_pb2.STAGE_MINTED
    mint = await chain.mint(job_id)
    assert mint.confirmed and mint.token_id == 2**200 and mint.minted_at is not None
    assert await chain.confirm(job_id) is None, "confirming twice changes nothing"
    back = await chain.undo(job_id)
    assert back is not None and back.stage == jobs_pb2.STAGE_PINNED
    assert await chain.mint(job_id) is None


async def test_the_watcher_cursor_and_relays_read_back(store):
    chain = ChainStore(store)
    assert await chain.cursor() is None
    await chain.set_cursor(5, "0xb5")
    await chain.set_cursor(7, "0xb7")
    assert await chain.cursor() == (7, "0xb7")
    job_id = await pinned_job(store, "k1")
    relay = Relay(job_id=job_id, wallet=WALLET, sender="0xs", nonce=3, tx_hash="0xt", raw_tx="0xraw",
                  max_fee=300 * 10**9, created_at=100.0, sent_at=100.0)
    await chain.add_relay(relay)
    assert await chain.relay(job_id) == relay
    assert await chain.relays_since(50.0) == 1 and await chain.relays_since(50.0, WALLET) == 1
    assert await chain.relays_since(150.0) == 0
    assert await chain.max_relay_nonce("0xs") == 3 and await chain.max_relay_nonce("0xother") is None
    await chain.replace_relay(job_id, "0xt2", "0xraw2", 400 * 10**9)
    assert [(r.tx_hash, r.max_fee) for r in await chain.unminted_relays()] == [("0xt2", 400 * 10**9)]


async def test_concurrent_events_of_one_job_record_each_stage_once(store):
    job, _ = await store.reserve("k1", "h" * 64, WALLET, "gen1", "{}")
    events = [broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_RENDERING, progress=p, source="renderer",
                                  replica="r1") for p in range(5, 60, 5)]
    events += [broker_pb2.JobEvent(job_id=job.job_id, stage=jobs_pb2.STAGE_RENDERED, progress=70, source="renderer",
                                   replica="r1")]
    bus = JobBus()
    # All at once, as the consumer's prefetch (and, on PostgreSQL, several replicas) would apply them.
    await asyncio.gather(*(apply_and_announce(store, bus, e) for e in events))
    history = await ops_store.stage_history(store, job.job_id)
    assert [h["stage"] for h in history] == [jobs_pb2.STAGE_RENDERING, jobs_pb2.STAGE_RENDERED]
    assert history[0]["replica"] == "r1" and history[0]["source"] == "renderer"
    assert (await store.get(job.job_id)).stage == jobs_pb2.STAGE_RENDERED


async def test_retries_dead_letters_and_the_audit_read_back(store):
    job_id = await pinned_job(store, "k1")
    await ops_store.note_retry(store, job_id, jobs_pb2.STAGE_PINNING, 2, 30, "pinata 503", "pinner", "p1")
    assert [(r["attempt"], r["reason"]) for r in await ops_store.retry_history(store, job_id)] == [(2, "pinata 503")]
    await ops_store.note_dead_letter(store, job_id, "pin", "m1", "rejected", "pinner")
    assert set(await ops_store.open_dead_letters(store, [job_id])) == {job_id}
    assert set(await ops_store.oldest_open_dead_letter(store)) == {"pin"}
    await ops_store.note_replayed(store, "pin", ["m1"])
    assert await ops_store.open_dead_letters(store, [job_id]) == {}
    assert (await ops_store.dead_letter_history(store, job_id))[0]["replayed_at"] is not None
    for n in range(3):
        await ops_store.audit(store, ops_store.AuditEntry("ops", "replay", job_id, "ok", {"n": n}))
    page = await ops_store.audit_page(store, limit=2)
    assert [e["detail"]["n"] for e in page] == [2, 1]
    older = await ops_store.audit_page(store, limit=5, before=page[-1]["id"])
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
        history = [h["stage"] for h in await ops_store.stage_history(stores[0], job.job_id)]
    finally:
        for s in stores:
            await s.close()
    # Whatever the interleaving, the furthest event wins and each stage reached is recorded once.
    assert (final.stage, final.state.progress) == (jobs_pb2.STAGE_PINNING, 90)
    # (Which stages are reached depends on the interleaving: a late RENDERED after PINNING changes nothing.)
    assert len(history) == len(set(history)) and jobs_pb2.STAGE_PINNING in history, history
