"""The pin ledger's promises across replicas, on both engines: each "replica" here is a ledger of its own (its own
connection, or pool on PostgreSQL) to one database, and they race for the same budget, CID and request slots."""

from __future__ import annotations

import asyncio

import pytest

from mintpipe.db.core import database_for
from mintpipe.pin_ledger import PINS_PER_JOB, PinLedger

pytestmark = pytest.mark.integration


@pytest.fixture
async def replicas(tmp_path, db_url):
    ledgers = [PinLedger(database_for(db_url, tmp_path / "pins.sqlite3"), "pinata") for _ in range(3)]
    for ledger in ledgers:
        await ledger.open()
    yield ledgers
    for ledger in ledgers:
        await ledger.close()


async def test_the_last_jobs_worth_of_budget_goes_to_exactly_one_job(replicas):
    budget = 5 * PINS_PER_JOB
    got = await asyncio.gather(*(replicas[n % 3].reserve_budget(f"{n:032x}", f"settings-{n}", budget, now=1000.0)
                                 for n in range(24)))
    granted = [n for n, (ok, _used, _held) in enumerate(got) if ok]
    assert len(granted) == 5, got
    # Whoever asks next sees the whole budget held.
    ok, used, held = await replicas[0].reserve_budget("f" * 32, "settings-late", budget, now=1001.0)
    assert (ok, used, held) == (False, 0, budget)


async def test_one_uploader_per_cid_whichever_replica_asks(replicas):
    got = await asyncio.gather(*(replicas[n % 3].claim_upload("bafkreisame", f"owner-{n}", 30.0, now=500.0)
                                 for n in range(12)))
    winners = [n for n, wait in enumerate(got) if wait == 0]
    assert len(winners) == 1, got
    assert all(wait == pytest.approx(30.0) for n, wait in enumerate(got) if n not in winners)
    # The holder renews; once it releases, another replica takes it at once.
    assert await replicas[winners[0] % 3].claim_upload("bafkreisame", f"owner-{winners[0]}", 30.0, now=510.0) == 0
    await replicas[winners[0] % 3].release_upload("bafkreisame", f"owner-{winners[0]}")
    assert await replicas[(winners[0] + 1) % 3].claim_upload("bafkreisame", "someone-else", 30.0, now=511.0) == 0


async def test_the_shared_request_window_never_grants_more_than_its_limit(replicas):
    got = await asyncio.gather(*(replicas[n % 3].acquire_request_slot(7, 60.0, now=100.0 + n / 1000)
                                 for n in range(30)))
    assert sum(wait == 0 for wait in got) == 7, got
    # A block recorded by one replica stops the others' slots at once, even with room in the window.
    await replicas[0].block_requests(20, now=200.0)
    assert await replicas[1].acquire_request_slot(100, 60.0, now=201.0) == pytest.approx(19.0)


async def test_pins_and_results_are_seen_by_every_replica(replicas):
    one, two, _ = replicas
    assert await one.record_pin("bafkreia", 10, "a" * 32, now=1_700_000_000.0)
    assert not await two.record_pin("bafkreia", 10, "a" * 32, now=1_700_000_000.0), "a known pin costs nothing"
    assert await two.is_pinned("bafkreia")
    assert await two.pins_this_month(now=1_700_000_000.0) == 1
    await one.record_job_result("a" * 32, "ipfs://meta", {"metadata": "meta"})
    await one.record_job_result("a" * 32, "ipfs://meta2", {"metadata": "meta2"})
    assert await two.job_result("a" * 32) == ("ipfs://meta2", {"metadata": "meta2"})
