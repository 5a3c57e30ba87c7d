"""Content ids exactly as `ipfs add --cid-version=1` computes them, so a token URI made here stays valid once
the same bytes are pinned to IPFS for real (and a CID a pinning service answers with can be checked).

What IPFS builds for a file (Kubo's defaults once CIDv1 is asked for, which turns raw leaves on):
- the bytes cut into fixed 256 KiB chunks; each chunk is a `raw` block (codec 0x55);
- a file of one chunk (the empty file too) is that raw block alone: `bafk…`;
- otherwise a balanced tree of UnixFS `dag-pb` nodes (codec 0x70) of at most 174 links each: chunks are taken
  174 at a time under a parent, parents 174 at a time under a grandparent, and so on until one root: `bafy…`;
- sha2-256 multihashes; the string form is multibase base32.

The CID, multihash, multibase and varint encodings come from `multiformats`. The two protobuf messages are
small enough to write by hand, and their bytes must match IPFS's exactly, so the field order is deliberate.
Checked against an independent implementation (the js UnixFS importer) in tests/unit/test_cid.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from multiformats import CID, varint

CHUNK_SIZE = 262_144  # Kubo's default chunker: size-262144
MAX_LINKS = 174  # Kubo's (and the js importer's) default links per node in the balanced layout

_UNIXFS_FILE = 2  # UnixFS Data.DataType.File


def _key(field: int, wire_type: int) -> bytes:
    return varint.encode(field << 3 | wire_type)


def _varint_field(field: int, value: int) -> bytes:
    return _key(field, 0) + varint.encode(value)


def _bytes_field(field: int, value: bytes) -> bytes:
    return _key(field, 2) + varint.encode(len(value)) + value


# Binary CIDv1 prefixes: version 1, codec (raw 0x55 / dag-pb 0x70), multihash sha2-256 (0x12) of 32 bytes; each a
# one-byte varint. The tree's nodes are kept as these bytes and only the root becomes a `multiformats` CID: making
# one CID object per 256 KiB leaf (with its runtime type checks) was ~60% of cid_of_file's CPU, measured here
# (11 MB: 16.8 -> ~7 ms, i.e. hashing alone; the pinner hashes each file twice).
_RAW_V1 = bytes([1, 0x55, 0x12, 32])
_DAG_PB_V1 = bytes([1, 0x70, 0x12, 32])


@dataclass(frozen=True, slots=True)
class _Node:
    cid: bytes  # the binary CIDv1
    filesize: int  # bytes of the file under this node
    tsize: int  # bytes of every block in this subtree: what a parent's PBLink.Tsize says


def _leaf(chunk: bytes | memoryview) -> _Node:
    return _Node(_RAW_V1 + hashlib.sha256(chunk).digest(), len(chunk), len(chunk))


def _parent(children: list[_Node]) -> _Node:
    # UnixFS Data (proto2): Type (1) = File, filesize (3), then blocksizes (4), one unpacked varint per child.
    # No Data (2): the bytes live in the leaves.
    filesize = sum(child.filesize for child in children)
    unixfs = _varint_field(1, _UNIXFS_FILE) + _varint_field(3, filesize)
    unixfs += b"".join(_varint_field(4, child.filesize) for child in children)
    # PBNode: the dag-pb spec's canonical form writes Links (field 2) before Data (field 1). Each PBLink is
    # Hash (1), Name (2) and Tsize (3); file importers give every link an empty Name, and it is written out.
    links = b"".join(
        _bytes_field(2, _bytes_field(1, child.cid) + _bytes_field(2, b"") + _varint_field(3, child.tsize))
        for child in children
    )
    block = links + _bytes_field(1, unixfs)
    return _Node(_DAG_PB_V1 + hashlib.sha256(block).digest(), filesize, len(block) + sum(c.tsize for c in children))


class CidBuilder:
    """The CID of a byte stream fed in pieces of any size: `update()` as often as needed, then `finish()`.

    Memory stays bounded whatever the size: at most one chunk of pending bytes, and at most `max_links` nodes
    per tree level, because a level's group is folded into its parent as soon as it is full (a full group
    becomes a parent whatever follows, so folding early builds the same tree as grouping level by level).
    `chunk_size` and `max_links` exist so tests can build deep trees from little data; keep the defaults.
    """

    def __init__(self, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS) -> None:
        if chunk_size < 1 or max_links < 2:
            raise ValueError("chunk_size must be >= 1 and max_links >= 2")
        self._chunk_size = chunk_size
        self._max_links = max_links
        self._pending = bytearray()
        self._levels: list[list[_Node]] = [[]]
        self._size = 0
        self._cid: str | None = None

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._size

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._cid is not None:
            raise RuntimeError("CidBuilder.update() after finish()")
        view = memoryview(data).cast("B")
        self._size += len(view)
        if self._pending:
            take = self._chunk_size - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < self._chunk_size:
                return
            self._push(0, _leaf(self._pending))
            self._pending.clear()
        # Whole chunks straight from the caller's buffer, without copying them.
        while len(view) >= self._chunk_size:
            self._push(0, _leaf(view[: self._chunk_size]))
            view = view[self._chunk_size :]
        self._pending += view

    def _push(self, level: int, node: _Node) -> None:
        if level == len(self._levels):
            self._levels.append([])
        nodes = self._levels[level]
        nodes.append(node)
        if len(nodes) == self._max_links:
            self._levels[level] = []
            self._push(level + 1, _parent(nodes))

    def finish(self) -> str:
        """The CID (CIDv1, base32). Further calls return the same string."""
        if self._cid is None:
            # The last, short chunk; or the one empty chunk of an empty file (IPFS hashes it as a raw block).
            if self._pending or self._size == 0:
                self._push(0, _leaf(bytes(self._pending)))
                self._pending.clear()
            # Bottom up, each level's last partial group becomes a parent one level higher, until the top
            # level holds a single node: the root. A file of one chunk stops at once: its raw leaf is the root.
            level = 0
            while not (level == len(self._levels) - 1 and len(self._levels[level]) == 1):
                nodes, self._levels[level] = self._levels[level], []
                if nodes:
                    self._push(level + 1, _parent(nodes))
                level += 1
            self._cid = _base32(self._levels[level][0].cid)
        return self._cid


def cid_of_bytes(data: bytes | bytearray | memoryview) -> str:
    builder = CidBuilder()
    builder.update(data)
    return builder.finish()


def cid_of_file(path: str | os.PathLike[str]) -> str:
    """Streams the file a chunk at a time: memory does not grow with its size."""
    builder = CidBuilder()
    buffer = bytearray(CHUNK_SIZE)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            builder.update(memoryview(buffer)[:n])
    return builder.finish()


def canonical_json_bytes(obj: Any) -> bytes:
    """One byte form per value: sorted keys, no whitespace, UTF-8 as is, no trailing newline. NaN and
    infinities are refused (they are not JSON), so the bytes are valid for any JSON reader."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def cid_of_json(obj: Any) -> tuple[str, bytes]:
    """The canonical JSON bytes of `obj` and their CID: the same value always gets the same CID."""
    body = canonical_json_bytes(obj)
    return cid_of_bytes(body), body


def _base32(binary_cid: bytes) -> str:
    """Multibase base32 ('b', RFC 4648 lowercase, no padding): the string form of a CIDv1."""
    return "b" + base64.b32encode(binary_cid).decode().lower().rstrip("=")


def _own_kind(text: str) -> bool:
    """A CID of the two kinds this module makes (v1, raw or dag-pb, sha2-256), already in canonical base32: the
    local store's every lookup, answered without multiformats' decoding (~0.5 ms each, measured here)."""
    if len(text) != 59 or text[0] != "b" or not text.islower():
        return False
    try:
        binary = base64.b32decode(text[1:].upper() + "======")  # 58 characters, padded to 64
    except (binascii.Error, ValueError):
        return False
    return len(binary) == 36 and binary[:4] in (_RAW_V1, _DAG_PB_V1) and _base32(binary) == text


def canonical_cid(text: str) -> str:
    """The CIDv1 base32 form of any valid CID string (v0 `Qm…`, or v1 in any multibase).

    Raises ValueError when `text` is not a CID. The local store keys objects by this form, so every
    spelling of a CID finds the same object, and a file name made from it is always plain base32.
    """
    if not isinstance(text, str) or not text or len(text) > 512:
        raise ValueError("not a CID")
    if _own_kind(text):
        return text
    try:
        cid = CID.decode(text)
    except Exception as exc:  # multiformats raises several error types (KeyError, ValueError, ...) on bad input
        raise ValueError(f"not a CID: {exc}") from None
    return str(cid.set(version=1, base="base32"))


def is_cid(text: str) -> bool:
    """True when `text` is a CIDv0 or CIDv1 string."""
    try:
        canonical_cid(text)
    except ValueError:
        return False
    return True
