"""The Pinata client and the pin service against the emulator (a real HTTP server speaking Pinata's
protocol, failures included)."""

from __future__ import annotations

import random

import httpx
import pytest

from mintpipe.core.cid import cid_of_file
from mintpipe.messaging.consumer import PermanentError, TransientError
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.pin_ledger import PinLedger
from pinner.backends import BackendAuthError, PinataBackend
from pinner.pinning import IntegrityError, PinService
from tests.support.emulator import running_emulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator():
    with running_emulator() as emu:
        yield emu


@pytest.fixture
def asset(tmp_path):
    path = tmp_path / f"asset-{random.random()}.gif"
    path.write_bytes(random.Random(str(path)).randbytes(300 * 1024))  # two chunks: a dag-pb root
    return path


@pytest.mark.parametrize("api", ["v3", "legacy"])
async def test_upload_returns_the_cid_we_compute_and_the_list_finds_it(emulator, asset, api):
    backend = PinataBackend(emulator.jwt, emulator.url, emulator.url, api=api)
    cid = cid_of_file(asset)
    assert not await backend.has(cid)
    assert await backend.pin_file(asset, "image/gif", asset.name, {"job_id": "j1"}) == cid
    assert await backend.has(cid)
    await backend.aclose()


async def test_protocol_failures_are_classified(emulator, asset):
    bad = PinataBackend("wrong-jwt", emulator.url, emulator.url)
    with pytest.raises(BackendAuthError, match="refused the JWT"):
        await bad.has("bafkqaaa")
    await bad.aclose()

    backend = PinataBackend(emulator.jwt, emulator.url, emulator.url, timeout=1.0)
    emulator.fault(status=429, retry_after=7)
    with pytest.raises(TransientError) as info:
        await backend.pin_file(asset, "image/gif", asset.name, {})
    assert info.value.retry_after == 7
    emulator.fault(status=503)
    with pytest.raises(TransientError, match="server error 503"):
        await backend.has("bafkqaaa")
    emulator.fault(delay=2.5)
    with pytest.raises(TransientError, match="timed out"):
        await backend.has("bafkqaaa")
    emulator.fault(status=400)
    with pytest.raises(PermanentError):
        await backend.has("bafkqaaa")
    await backend.aclose()


def test_a_real_429_carries_rate_limit_headers():
    with running_emulator(rate_limit=2, window=30) as emu:
        headers = {"Authorization": f"Bearer {emu.jwt}"}
        replies = [httpx.get(f"{emu.url}/data/testAuthentication", headers=headers) for _ in range(3)]
        assert [r.status_code for r in replies] == [200, 200, 429]
        assert replies[0].headers["X-RateLimit-Limit"] == "2"
        assert replies[1].headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(replies[2].headers["Retry-After"]) <= 30
        stats = emu.stats()
        assert stats["max_requests_in_window"] == 2  # admitted: the server refuses the rest
        assert stats["max_attempts_in_window"] == 3  # attempted: what shows a client overrunning the limit


async def test_a_held_back_answer_comes_after_the_upload_is_stored(emulator, asset):
    """The fault that lets a test kill a client between the upload taking effect and the client hearing of it."""
    backend = PinataBackend(emulator.jwt, emulator.url, emulator.url, timeout=1.0)
    cid = cid_of_file(asset)
    emulator.fault(delay_after=3)
    with pytest.raises(TransientError, match="timed out"):
        await backend.pin_file(asset, "image/gif", asset.name, {})
    assert emulator.stats()["uploads_per_cid"][cid] == 1
    assert await backend.has(cid)
    (listed,) = [r for r in emulator.requests() if r["method"] == "GET" and r["cid"] == cid]
    assert listed["status"] == 200 and listed["path"] == "/v3/files/public"
    await backend.aclose()


def _service(emulator, tmp_path, **kw) -> PinService:
    backend = PinataBackend(emulator.jwt, emulator.url, emulator.url)
    return PinService(backend, PinLedger(tmp_path / "pins.sqlite3", backend.name), LocalIpfsStore(tmp_path / "ipfs"),
                      rate_limit=kw.get("rate_limit", 1000), rate_window=60, monthly_pins=kw.get("monthly_pins"))


async def test_the_same_content_is_never_uploaded_twice_even_when_the_ledger_forgot(emulator, asset, tmp_path):
    service = _service(emulator, tmp_path)
    cid = await service.pin(asset, "image/gif", asset.name, "j1", {})
    assert await service.pin(asset, "image/gif", asset.name, "j1", {}) == cid
    assert service.counts["uploads"] == 1 and service.counts["skipped_known"] == 1
    # A crash between upload and ledger write: a fresh ledger asks Pinata's own list instead.
    (tmp_path / "pins.sqlite3").unlink()
    forgetful = _service(emulator, tmp_path)
    assert await forgetful.pin(asset, "image/gif", asset.name, "j1", {}) == cid
    assert forgetful.counts["uploads"] == 0 and forgetful.counts["skipped_listed"] == 1
    assert emulator.stats()["uploads_per_cid"][cid] == 1
    assert not LocalIpfsStore(tmp_path / "ipfs").has(cid), "pinning to Pinata keeps no second copy on local disk"


async def test_a_cid_mismatch_fails_loudly(emulator, asset, tmp_path):
    service = _service(emulator, tmp_path)
    emulator.fault(count=1)  # the lookup passes
    emulator.fault(wrong_cid=True)  # the upload answers another CID
    with pytest.raises(IntegrityError, match="bytes hash to"):
        await service.pin(asset, "image/gif", asset.name, "j1", {})


async def test_the_monthly_budget_parks_uploads_beyond_it(emulator, tmp_path):
    service = _service(emulator, tmp_path, monthly_pins=1)
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"first asset")
    second.write_bytes(b"second asset")
    await service.pin(first, "application/octet-stream", "a", "j1", {})
    with pytest.raises(PermanentError, match="monthly pin budget of 1 spent"):
        await service.pin(second, "application/octet-stream", "b", "j1", {})
