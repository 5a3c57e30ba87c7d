"""The local content-addressed store: round trip, content type, dedupe, several processes adding at once,
crash leftovers."""

from __future__ import annotations

import multiprocessing
import os
import random
import time

import pytest
from multiformats import CID

import mintpipe.objects.ipfs as ipfs_store
from mintpipe.core.cid import cid_of_bytes
from mintpipe.objects.ipfs import LocalIpfsStore

pytestmark = pytest.mark.unit


def test_round_trip_keeps_bytes_content_type_and_name(tmp_path):
    store = LocalIpfsStore(tmp_path / "ipfs")
    result = store.add_bytes(b'{"name":"x"}', "application/json", "metadata.json")
    assert result.cid == cid_of_bytes(b'{"name":"x"}') and result.size == 12 and not result.already_pinned
    stored = store.get(result.cid)
    assert stored.path.read_bytes() == b'{"name":"x"}'
    assert (stored.cid, stored.content_type, stored.name, stored.size) == (
        result.cid, "application/json", "metadata.json", 12)
    assert store.has(result.cid)


def test_add_file_stores_a_multi_chunk_file_under_its_ipfs_cid(tmp_path):
    data = random.Random(1).randbytes(700_000)  # three chunks: a dag-pb root
    source = tmp_path / "a.gif"
    source.write_bytes(data)
    store = LocalIpfsStore(tmp_path / "ipfs")
    result = store.add_file(source, "image/gif", "a.gif")
    assert result.cid == cid_of_bytes(data) and result.cid.startswith("bafy") and result.size == len(data)
    stored = store.get(result.cid)
    assert stored.path.read_bytes() == data and stored.content_type == "image/gif"
    # Any spelling of the CID finds it: CIDv0, upper case base32.
    v0 = str(CID.decode(result.cid).set(version=0, base="base58btc"))
    assert v0.startswith("Qm") and store.get(v0) == stored and store.get(result.cid.upper()) == stored


def test_the_same_content_is_stored_once_and_the_second_add_copies_nothing(tmp_path, monkeypatch):
    store = LocalIpfsStore(tmp_path / "ipfs")
    source = tmp_path / "a.gif"
    source.write_bytes(b"GIF89a" + bytes(300_000))
    first = store.add_file(source, "image/gif")

    def no_copy():
        raise AssertionError("a pinned CID was copied again")

    monkeypatch.setattr(store, "_temp_file", no_copy)
    second = store.add_file(source, "image/gif")
    third = store.add_bytes(source.read_bytes(), "image/gif")
    assert not first.already_pinned and second.already_pinned and third.already_pinned
    assert first.cid == second.cid == third.cid and second.size == first.size
    assert store.pins_count() == 1 and [obj.cid for obj in store.ledger()] == [first.cid]


def test_ledger_lists_every_pin_oldest_first(tmp_path):
    store = LocalIpfsStore(tmp_path / "ipfs")
    cids = [store.add_bytes(f"object {i}".encode(), "text/plain", f"{i}.txt").cid for i in range(5)]
    ledger = store.ledger()
    assert [obj.cid for obj in ledger] == cids
    assert [obj.name for obj in ledger] == [f"{i}.txt" for i in range(5)]
    assert store.pins_count() == 5


def test_unknown_and_malformed_cids_are_not_found(tmp_path):
    store = LocalIpfsStore(tmp_path / "ipfs")
    assert store.get(cid_of_bytes(b"never added")) is None
    for bad in ["../../etc/passwd", "not-a-cid", "", "bafy/../x"]:
        assert store.get(bad) is None and not store.has(bad)


def test_a_file_that_changes_while_being_added_is_not_stored(tmp_path, monkeypatch):
    store = LocalIpfsStore(tmp_path / "ipfs")
    source = tmp_path / "a.bin"
    source.write_bytes(b"after")
    # As if the file held other bytes when its CID was computed.
    monkeypatch.setattr(ipfs_store, "cid_of_file", lambda path: cid_of_bytes(b"before"))
    with pytest.raises(ValueError, match="changed"):
        store.add_file(source, "application/octet-stream")
    assert store.pins_count() == 0 and not store.has(cid_of_bytes(b"before"))
    assert os.listdir(tmp_path / "ipfs" / ".incoming") == []


def test_a_cid_handed_in_saves_a_read_but_a_wrong_one_stores_nothing(tmp_path, monkeypatch):
    store = LocalIpfsStore(tmp_path / "ipfs")
    source = tmp_path / "a.bin"
    data = random.Random(2).randbytes(600_000)
    source.write_bytes(data)
    reads = []
    monkeypatch.setattr(ipfs_store, "cid_of_file", lambda path: reads.append(path) or cid_of_bytes(data))
    with pytest.raises(ValueError, match="changed"):
        store.add_file(source, "application/octet-stream", cid=cid_of_bytes(b"other bytes"))
    assert store.pins_count() == 0 and os.listdir(tmp_path / "ipfs" / ".incoming") == []
    result = store.add_file(source, "application/octet-stream", cid=cid_of_bytes(data))
    assert result.cid == cid_of_bytes(data) and not result.already_pinned and reads == []
    assert store.get(result.cid).path.read_bytes() == data


def _add_all(root, contents, barrier, results):
    store = LocalIpfsStore(root)
    barrier.wait(timeout=30)  # every process starts adding at the same moment
    results.put([store.add_bytes(data, "application/octet-stream").already_pinned for data in contents])


def test_concurrent_adds_from_processes_leave_one_whole_object_each_and_no_temp_files(tmp_path):
    root = tmp_path / "ipfs"
    contents = [random.Random(seed).randbytes(1_500_000) for seed in range(4)]
    cids = [cid_of_bytes(data) for data in contents]
    ctx = multiprocessing.get_context("fork")
    procs_n = 5
    barrier, results = ctx.Barrier(procs_n + 1), ctx.Queue()
    procs = [ctx.Process(target=_add_all, args=(root, contents, barrier, results)) for _ in range(procs_n)]
    for proc in procs:
        proc.start()
    store = LocalIpfsStore(root)
    barrier.wait(timeout=30)
    # Meanwhile, a reader: whatever get() returns is always whole.
    deadline = time.monotonic() + 30
    while any(proc.is_alive() for proc in procs) and time.monotonic() < deadline:
        for cid, data in zip(cids, contents, strict=True):
            stored = store.get(cid)
            if stored is not None:
                assert stored.path.read_bytes() == data
    outcomes = [results.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    # Exactly one process created each object; all others were told it was pinned already.
    for i in range(len(contents)):
        assert sorted(outcome[i] for outcome in outcomes) == [False] + [True] * (procs_n - 1)
    for cid, data in zip(cids, contents, strict=True):
        assert store.get(cid).path.read_bytes() == data
    assert store.pins_count() == len(contents)
    assert os.listdir(root / ".incoming") == []


def test_crash_leftovers_are_ignored_and_stale_temp_files_swept(tmp_path):
    root = tmp_path / "ipfs"
    store = LocalIpfsStore(root)
    # A crash mid-write: a half temp file. A crash after the bytes moved in but before the sidecar.
    half = root / ".incoming" / "add-crashed"
    half.write_bytes(b"ha")
    orphan_cid = cid_of_bytes(b"whole")
    (root / orphan_cid[-2:]).mkdir()
    (root / orphan_cid[-2:] / orphan_cid).write_bytes(b"whole")
    assert store.pins_count() == 0 and store.ledger() == []
    assert not store.has(orphan_cid) and store.get(orphan_cid) is None
    # The next add of the same bytes completes the pin.
    result = store.add_bytes(b"whole", "text/plain")
    assert result.cid == orphan_cid and not result.already_pinned
    assert store.get(orphan_cid).path.read_bytes() == b"whole" and store.pins_count() == 1
    # A young temp file may be another process's add in progress: kept. An old one is swept on open.
    LocalIpfsStore(root)
    assert half.exists()
    old = time.time() - ipfs_store.STALE_TEMP_SECONDS - 60
    os.utime(half, (old, old))
    LocalIpfsStore(root)
    assert not half.exists()
