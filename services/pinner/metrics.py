"""The pinner's Prometheus metrics, read from what PinService already counts (PinService.counts) and from the
shared pin ledger (the month's pins and budget) at scrape time, so the pin path itself carries no metrics code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mintpipe.runtime.metrics import REGISTRY
from pinner.pinning import PinService


class PinCollector(Collector):
    def __init__(self, pins: PinService, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.pins = pins
        self.loop = loop
        self.last_used = 0

    def _pins_this_month(self) -> int:
        """The ledger is async (its connections belong to the service's event loop) and a scrape runs on the
        metrics server's thread: ask the loop, and keep the last answer for a scrape the loop cannot serve."""
        try:
            asyncio.get_running_loop()
            in_loop = True  # called from a coroutine (never wait on our own loop)
        except RuntimeError:
            in_loop = False
        if self.loop is not None and self.loop.is_running() and not in_loop:
            try:
                future = asyncio.run_coroutine_threadsafe(self.pins.ledger.pins_this_month(), self.loop)
                self.last_used = future.result(timeout=5)
            except Exception:  # a scrape must not fail for a slow database: the last figure stands
                pass
        return self.last_used

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counts = self.pins.counts
        backend = self.pins.backend.name
        requests = CounterMetricFamily("mintpipe_pin_uploads", "uploads to the pinning backend (new content)",
                                       labels=["backend"])
        requests.add_metric([backend], counts.get("uploads", 0))
        yield requests
        skipped = CounterMetricFamily("mintpipe_pin_skipped", "pins not uploaded because the content was already "
                                      "pinned (known: our ledger; listed: the backend's own list)",
                                      labels=["backend", "why"])
        for why in ("known", "listed"):
            skipped.add_metric([backend, why], counts.get(f"skipped_{why}", 0))
        yield skipped
        limited = CounterMetricFamily("mintpipe_pin_rate_limited", "429 answers from the backend", labels=["backend"])
        limited.add_metric([backend], counts.get("rate_limited", 0))
        yield limited
        slept = CounterMetricFamily("mintpipe_pin_rate_wait_seconds",
                                    "seconds slept for the shared rate limit (rate) or a 429's Retry-After",
                                    labels=["backend", "why"])
        waits = CounterMetricFamily("mintpipe_pin_rate_waits", "times a pin waited for a request slot",
                                    labels=["backend", "why"])
        for why in ("rate", "retry_after"):
            slept.add_metric([backend, why], counts.get(f"{why}_wait_seconds", 0.0))
            waits.add_metric([backend, why], counts.get(f"{why}_waits", 0))
        yield slept
        yield waits
        used = self._pins_this_month()
        month = GaugeMetricFamily("mintpipe_pinner_pins_this_month", "pins made this month (the shared ledger)")
        month.add_metric([], used)
        yield month
        left = GaugeMetricFamily("mintpipe_pinner_pin_budget_left", "pins left this month (-1: no budget set)")
        left.add_metric([], -1 if self.pins.monthly_pins is None else max(self.pins.monthly_pins - used, 0))
        yield left


def register(pins: PinService) -> None:
    REGISTRY.register(PinCollector(pins, asyncio.get_running_loop()))
