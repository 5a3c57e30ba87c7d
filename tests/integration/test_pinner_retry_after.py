"""A 429's Retry-After holds off every pinner replica, not only the job that got it: two pin services sharing
one ledger (as replicas share the data volume) against the emulator, which logs when each request arrived."""

from __future__ import annotations

import asyncio
import math
import random
import time

import pytest

from mintpipe.db.core import database_for
from mintpipe.messaging.consumer import TransientError
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.pin_ledger import PinLedger
from pinner.backends import BackendRateLimited, PinataBackend
from pinner.pinning import MAX_INLINE_WAIT, PinService
from tests.support.emulator import Emulator, running_emulator

pytestmark = pytest.mark.integration


def replica(emu: Emulator, data_dir, tag: str) -> PinService:
    """One replica's pin service: its own HTTP client and local store, the ledger file shared with the others."""
    backend = PinataBackend(emu.jwt, emu.url, emu.url)
    return PinService(backend, PinLedger(data_dir / "pins.sqlite3", backend.name), LocalIpfsStore(data_dir / tag),
                      rate_limit=1000, rate_window=60, monthly_pins=None)


def asset(data_dir, name: str):
    path = data_dir / name
    path.write_bytes(random.Random(name).randbytes(64 * 1024))
    return path


def the_429(emu: Emulator) -> dict:
    (refused,) = [r for r in emu.requests() if r["status"] == 429]
    return refused


async def test_a_block_is_shared_only_ever_extended_and_takes_no_slot(tmp_path, db_url):
    # Three ledgers, three connections (pools on PostgreSQL) to one database: as replicas share it.
    def ledger(backend: str) -> PinLedger:
        return PinLedger(database_for(db_url, tmp_path / "pins.sqlite3"), backend)

    one, two, other = ledger("b"), ledger("b"), ledger("other")
    try:
        assert await one.block_requests(5, now=100.0) == 105.0
        assert await two.block_requests(1, now=101.0) == 105.0, "a shorter, later Retry-After must not cut a longer one"
        assert await two.block_requests(math.nan, now=101.0) == 105.0
        assert await other.acquire_request_slot(1, 60, now=102.0) == 0
        assert await two.acquire_request_slot(1, 60, now=102.0) == pytest.approx(3.0)
        # Waiting out the block took no slot: with a limit of 1 the first request after it still goes.
        assert await one.acquire_request_slot(1, 60, now=105.0) == 0
        assert await one.acquire_request_slot(1, 60, now=105.5) > 0
    finally:
        for each in (one, two, other):
            await each.close()


async def test_after_a_429_no_replica_calls_before_its_retry_after(tmp_path):
    retry_after = 3
    with running_emulator() as emu:
        first, second = replica(emu, tmp_path, "a"), replica(emu, tmp_path, "b")
        a, b = asset(tmp_path, "a.bin"), asset(tmp_path, "b.bin")
        emu.fault(status=429, retry_after=retry_after)  # the first replica's lookup is refused
        with pytest.raises(BackendRateLimited) as info:
            await first.pin(a, "application/octet-stream", "a", "j1", {})
        assert info.value.retry_after == retry_after
        refused = the_429(emu)
        # The first replica's retry (a quick redelivery) and another replica's job, both right away.
        started = time.monotonic()
        await asyncio.gather(first.pin(a, "application/octet-stream", "a", "j1", {}),
                             second.pin(b, "application/octet-stream", "b", "j2", {}))
        elapsed = time.monotonic() - started
        seen = emu.requests(since=refused["at"])
        after = [r for r in seen if r != refused]
        stats = emu.stats()
        for service in (first, second):
            await service.backend.aclose()
    earliest = min(r["at"] for r in after) - refused["at"]
    print(f"\nRetry-After {retry_after}s: 429s seen {sum(r['status'] == 429 for r in seen)}, first request after "
          f"it {earliest:.2f}s later; replicas slept {first.counts['retry_after_wait_seconds']:.2f}s and "
          f"{second.counts['retry_after_wait_seconds']:.2f}s in {first.counts['retry_after_waits']} and "
          f"{second.counts['retry_after_waits']} waits; both pinned {elapsed:.2f}s after the 429")
    assert [r["status"] for r in after] == [200] * 4, after  # a lookup and an upload for each asset
    assert earliest >= retry_after, "a replica called the backend before the Retry-After had passed"
    assert set(stats["uploads_per_cid"].values()) == {1}
    # Slept out in one go, not polled (a second, tiny wait only if the timer fired a hair early).
    assert 1 <= second.counts["retry_after_waits"] <= 2


async def test_a_long_retry_after_parks_other_replicas_jobs_without_calling_or_using_an_attempt(tmp_path):
    retry_after = 30
    assert retry_after > MAX_INLINE_WAIT
    with running_emulator() as emu:
        first, second = replica(emu, tmp_path, "a"), replica(emu, tmp_path, "b")
        emu.fault(status=429, retry_after=retry_after)
        with pytest.raises(BackendRateLimited):
            await first.pin(asset(tmp_path, "a.bin"), "application/octet-stream", "a", "j1", {})
        refused = the_429(emu)
        for service, name in ((second, "b.bin"), (first, "c.bin")):
            with pytest.raises(TransientError, match="asked every replica to wait") as info:
                await service.pin(asset(tmp_path, name), "application/octet-stream", name, "j2", {})
            assert not info.value.counts, "waiting out the backend's Retry-After must not use up an attempt"
            assert retry_after - 5 < info.value.retry_after <= retry_after
        requests = emu.requests()
        for service in (first, second):
            await service.backend.aclose()
    assert requests == [refused], "a replica called the backend during the Retry-After"
