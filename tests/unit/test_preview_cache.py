"""The renderer's preview still cache: least recently used first out, bounded in bytes."""

import pytest

from renderer.preview import Still, StillCache

pytestmark = pytest.mark.unit


def still(n: int, size: int = 100) -> Still:
    return Still(bytes([n]) * size, f"hash{n}", "{}", 64, 0)


def test_the_cache_keeps_the_recently_used_within_its_bytes():
    cache = StillCache(max_bytes=300)
    for n in range(3):
        cache.put((f"h{n}", 64), still(n))
    assert cache.get(("h0", 64)) is not None  # h0 is now the most recently used
    cache.put(("h3", 64), still(3))
    assert cache.get(("h1", 64)) is None  # the least recently used went
    assert {k for k in ("h0", "h2", "h3") if cache.get((k, 64))} == {"h0", "h2", "h3"}
    assert cache.bytes == 300 and len(cache) == 3


def test_a_still_larger_than_the_cache_is_not_kept_and_a_replacement_is_counted_once():
    cache = StillCache(max_bytes=150)
    cache.put(("big", 64), still(1, 151))
    assert len(cache) == 0 and cache.bytes == 0
    cache.put(("a", 64), still(1))
    cache.put(("a", 64), still(2))
    assert cache.bytes == 100 and cache.get(("a", 64)).png[0] == 2
