"""A strict GIF LZW decoder for the tests, written from the GIF89a specification (appendix F) and unlike the
decoders of Pillow, ffmpeg and omggif in one way: it does not stop once the image is full. It reads on to the
end code, at the width the specification gives, and then requires every code bit to be used up (only the last
byte's padding may remain). An end code at the wrong width, or codes after the image, fail here."""

from __future__ import annotations

CLEAR, END = 256, 257


def unframe(data: bytes) -> bytes:
    """The packed codes of an image's data: minimum code size 8, then sub-blocks up to the empty one."""
    assert data[0] == 8, f"minimum code size {data[0]}, not 8"
    packed, at = bytearray(), 1
    while data[at]:
        packed += data[at + 1: at + 1 + data[at]]
        at += 1 + data[at]
    assert at == len(data) - 1, "bytes after the block terminator"
    return bytes(packed)


def _string(table: dict[int, bytes], code: int) -> bytes:
    return bytes([code]) if code < 256 else table[code]


def decode(data: bytes, pixels: int) -> bytes:
    packed = unframe(data)
    total = len(packed) * 8
    padded = packed + b"\0\0"
    position, width = 0, 9
    table: dict[int, bytes] = {}
    available, previous = 258, None
    out = bytearray()
    while True:
        assert position + width <= total, f"the data ends inside a {width}-bit code at bit {position}"
        at = position >> 3
        code = (int.from_bytes(padded[at: at + 3], "little") >> (position & 7)) & ((1 << width) - 1)
        position += width
        if code == CLEAR:
            table, available, previous, width = {}, 258, None, 9
            continue
        if code == END:
            assert total - position < 8, f"{total - position} bits left after the end code"
            assert len(out) == pixels, f"{len(out)} pixels decoded, {pixels} expected"
            return bytes(out)
        if previous is None:
            assert code < 256, f"code {code} first after a clear"
            current = _string(table, code)
        else:
            before = _string(table, previous)
            if code < 256 or code in table:
                current = _string(table, code)
            else:
                assert code == available, f"code {code} is not in the table (next is {available})"
                current = before + before[:1]
            if available < 4096:
                table[available] = before + current[:1]
                available += 1
        out += current
        assert len(out) <= pixels, "more pixels than the image holds"
        previous = code
        if available == 1 << width and width < 12:
            width += 1
