import pytest

from mintpipe.limits.memory import KeyedRateLimiter

pytestmark = pytest.mark.unit


def test_burst_then_refill_per_key():
    limiter = KeyedRateLimiter(rate=60, per=60, burst=3)
    assert [limiter.acquire("a", now=0) for _ in range(3)] == [0, 0, 0]
    wait = limiter.acquire("a", now=0)
    assert wait == pytest.approx(1.0)
    assert limiter.acquire("b", now=0) == 0, "keys are independent"
    assert limiter.acquire("a", now=1.0) == 0, "one token back after a second"


def test_memory_is_bounded():
    limiter = KeyedRateLimiter(rate=1, per=60, burst=1, max_keys=10)
    for i in range(1000):
        limiter.acquire(f"ip-{i}", now=0)
    assert len(limiter._buckets) == 10
