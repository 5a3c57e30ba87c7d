"""README promises: transient failures get ten attempts spread over 25-40 minutes, so a backend outage of a
quarter of an hour fails nothing. The schedule is computed here from the code that makes it: the consumer's
backoff, the broker's retry tiers (what a message really waits), and the consumer's rule that the last attempt
fails the job instead of waiting."""

from __future__ import annotations

import random

import pytest

from mintpipe.messaging import consumer
from mintpipe.messaging.broker import RETRY_TIERS, retry_tier
from mintpipe.messaging.consumer import MAX_ATTEMPTS, backoff_seconds

pytestmark = pytest.mark.unit
WINDOW = (25 * 60, 40 * 60)


def real_waits() -> list[int]:
    """What the broker makes a message wait after each failed attempt that is retried: attempts 0 to
    MAX_ATTEMPTS - 2 (QueueConsumer._retry fails the job when attempt + 1 reaches MAX_ATTEMPTS)."""
    return [retry_tier(backoff_seconds(attempt)) for attempt in range(MAX_ATTEMPTS - 1)]


def test_every_drawn_schedule_spans_25_to_40_minutes():
    random.seed(1234)
    totals = [sum(real_waits()) for _ in range(20_000)]
    low, high = min(totals), max(totals)
    mean = sum(totals) / len(totals)
    print(f"\nretry window over 20000 draws: min {low / 60:.1f} min, mean {mean / 60:.1f}, max {high / 60:.1f}")
    assert WINDOW[0] <= low and high <= WINDOW[1], (low / 60, high / 60)


@pytest.mark.parametrize("pick", [min, max], ids=["shortest", "longest"])
def test_the_extreme_schedules_stay_in_the_window(monkeypatch, pick):
    # Every random draw taking its shortest (or longest) option: the real bounds, not a sample of them.
    monkeypatch.setattr(consumer.random, "choice", pick)
    monkeypatch.setattr(consumer.random, "uniform", lambda a, b: pick(a, b))
    total = sum(real_waits())
    assert WINDOW[0] <= total <= WINDOW[1], total / 60


def test_a_drawn_wait_is_a_tier_so_the_broker_waits_exactly_that():
    random.seed(7)
    for attempt in range(MAX_ATTEMPTS - 1):
        for _ in range(50):
            delay = backoff_seconds(attempt)
            assert delay in RETRY_TIERS and retry_tier(delay) == delay


def test_retry_after_is_never_cut_short():
    random.seed(3)
    for retry_after in (0.5, 7, 61, 599):
        assert retry_tier(backoff_seconds(0, retry_after)) >= retry_after
