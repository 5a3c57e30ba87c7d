"""mintpipe.core.cid against an independent implementation: the js UnixFS importer behind the npm package
ipfs-only-hash (installed by `npm ci`; see tests/support/ipfs_hash.mjs). Every file is made afresh from a
seeded generator, and the reference is run over all of them in one node process, so the module stays fast."""

from __future__ import annotations

import random
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from mintpipe.core.cid import (
    CHUNK_SIZE,
    CidBuilder,
    canonical_cid,
    canonical_json_bytes,
    cid_of_bytes,
    cid_of_file,
    cid_of_json,
    is_cid,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "support" / "ipfs_hash.mjs"
EMPTY_FILE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # what `ipfs add --cid-version=1` says

KIB = 1024
# The sizes, plus 50 MB: 191 chunks, more than one node's 174 links, so a second tree level.
SIZES = {
    "empty": 0,
    "one byte": 1,
    "256 KiB": 256 * KIB,
    "256 KiB + 1": 256 * KIB + 1,
    "5 MB": 5_000_000,
    "50 MB (two levels)": 50_000_000,
}
# Tree shapes at every boundary (one leaf, a full node, a full node + 1, a full two-level tree, ...) built
# from little data by shrinking the chunk to 16 bytes and the links to 4 on both sides.
SMALL_CHUNK, SMALL_LINKS = 16, 4
SHAPE_SIZES = [1, 15, 16, 17, 64, 65, 80, 256, 257, 1024, 1025, 1600, 4096 + 5]


def _data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _reference(paths: list[Path], *options: str) -> list[str]:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: the CID tests need it for the reference (scripts/bootstrap.sh)")
    if not (ROOT / "node_modules" / "ipfs-only-hash").is_dir():
        pytest.fail("node_modules/ipfs-only-hash is missing: run `npm ci` at the repo root (scripts/bootstrap.sh "
                    "does) — the CID tests need it as their independent reference")
    out = subprocess.run(["node", str(REFERENCE), *options, *map(str, paths)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, f"reference failed: {out.stderr}"
    cids = out.stdout.split()
    assert len(cids) == len(paths), out.stdout
    return cids


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (file, the reference's CID), every file written fresh for this run."""
    folder = tmp_path_factory.mktemp("cid-samples")
    paths = []
    for seed, size in enumerate(SIZES.values()):
        path = folder / f"{seed}.bin"
        path.write_bytes(_data(size, seed))
        paths.append(path)
    return dict(zip(SIZES, zip(paths, _reference(paths), strict=True), strict=True))


@pytest.mark.unit
@pytest.mark.parametrize("name", list(SIZES))
def test_file_cid_matches_the_reference(sample_files, name):
    path, expected = sample_files[name]
    assert cid_of_file(path) == expected
    assert cid_of_bytes(path.read_bytes()) == expected


@pytest.mark.unit
def test_single_block_files_are_raw_and_bigger_ones_dag_pb(sample_files):
    assert sample_files["empty"][1] == EMPTY_FILE_CID
    for name in ("empty", "one byte", "256 KiB"):
        assert sample_files[name][1].startswith("bafk"), name
    for name in ("256 KiB + 1", "5 MB", "50 MB (two levels)"):
        assert sample_files[name][1].startswith("bafy"), name


@pytest.mark.unit
def test_tree_shapes_at_every_boundary_match_the_reference(tmp_path):
    paths = []
    for size in SHAPE_SIZES:
        path = tmp_path / f"{size}.bin"
        path.write_bytes(_data(size, size))
        paths.append(path)
    expected = _reference(paths, "--chunk", str(SMALL_CHUNK), "--links", str(SMALL_LINKS))
    for size, path, cid in zip(SHAPE_SIZES, paths, expected, strict=True):
        builder = CidBuilder(chunk_size=SMALL_CHUNK, max_links=SMALL_LINKS)
        builder.update(path.read_bytes())
        assert builder.finish() == cid, f"{size} bytes ({-(-size // SMALL_CHUNK)} chunks)"


@pytest.mark.unit
def test_pieces_of_any_size_give_the_same_cid():
    data = _data(3 * CHUNK_SIZE + 12_345, 7)
    rng = random.Random(8)
    builder = CidBuilder()
    offset = 0
    while offset < len(data):
        step = rng.choice([0, 1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 700_000])
        builder.update(data[offset:offset + step])
        offset += step
    assert builder.size == len(data)
    assert builder.finish() == builder.finish() == cid_of_bytes(data)
    with pytest.raises(RuntimeError):
        builder.update(b"late")


@pytest.mark.unit
def test_cid_of_file_does_not_hold_the_file_in_memory(sample_files):
    path, expected = sample_files["50 MB (two levels)"]
    tracemalloc.start()
    try:
        assert cid_of_file(path) == expected
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * CHUNK_SIZE, f"peak {peak} bytes while hashing a 50 MB file"


@pytest.mark.unit
def test_json_is_canonical_and_its_cid_matches_the_reference(tmp_path):
    cid, body = cid_of_json({"name": "Mint #1 ✨", "attributes": [{"value": 3, "trait_type": "seed"}], "a": None})
    assert body == '{"a":null,"attributes":[{"trait_type":"seed","value":3}],"name":"Mint #1 ✨"}'.encode()
    # Key order in the input does not matter; the same value always has the same CID.
    assert cid_of_json({"a": None, "name": "Mint #1 ✨", "attributes": [{"trait_type": "seed", "value": 3}]}) == (
        cid, body)
    path = tmp_path / "metadata.json"
    path.write_bytes(body)
    assert _reference([path]) == [cid]
    with pytest.raises(ValueError):
        canonical_json_bytes({"x": float("nan")})


@pytest.mark.unit
def test_is_cid_and_canonical_form():
    v1 = cid_of_bytes(b"hello")
    assert is_cid(v1) and is_cid(v1.upper()) and is_cid(EMPTY_FILE_CID)
    assert canonical_cid(v1.upper()) == v1
    v0 = "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"  # a CIDv0 is dag-pb: its v1 form is bafy…
    assert is_cid(v0) and canonical_cid(v0).startswith("bafy")
    for bad in ["", "hello", "../../etc/passwd", v1[:-3], v1 + "x", "bafy" + "a" * 600, "Qm" + "1" * 44]:
        assert not is_cid(bad), bad
        with pytest.raises(ValueError):
            canonical_cid(bad)
    assert not is_cid(None)  # type: ignore[arg-type]


def test_the_fast_path_for_our_own_cids_agrees_with_multiformats():
    from multiformats import CID

    for data in (b"", b"hello", bytes(CHUNK_SIZE + 1)):
        cid = cid_of_bytes(data)
        assert canonical_cid(cid) == cid == str(CID.decode(cid).set(base="base32"))
        # Same bytes, another last character (its unused low bits set): not the canonical spelling, so the
        # fast path declines it and multiformats decides.
        other = cid[:-1] + ("b" if cid[-1] == "a" else "a")
        try:
            expected = str(CID.decode(other).set(base="base32"))
        except Exception:  # not a CID at all
            assert not is_cid(other)
        else:
            assert canonical_cid(other) == expected
