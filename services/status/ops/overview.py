"""The operators' overview: the broker's queues and the job store's numbers, measured where each is known.

Queues (every stage's work queue, its retry tiers and its dead letters) are read with passive declares, which
any RabbitMQ answers (no management plugin needed): depth (ready messages) and consumers. What a passive declare
cannot say is taken from where it is known:
- rates in/out of the render and pin queues: stage changes in the job store over the last minute (a job
  entering `rendering` left the render queue, `rendered` entered the pin queue, ...); for the events queue,
  the events this process applied;
- rates of the render and pin retry tiers: the retry history (a message enters its tier when the stage reports
  the retry and leaves it, by the tier's TTL, exactly that many seconds later); of their dead-letter queues:
  the dead-letter history (in when dead-lettered, out when replayed); the events queue's retry tiers and dead
  letters: what this process's events consumer sent there (in; out is not known: shown as none);
- oldest message age: the oldest job waiting in that stage (render: queued and published, pin: rendered),
  the oldest dead letter not yet replayed (dead-letter history); a retry tier holds a message at most its delay;
- a queue is `growing` when its depth rose over the last three refreshes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractChannel
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiormq.exceptions import ChannelNotFoundEntity

from mintpipe.core.stages import STAGE_NAMES
from mintpipe.db.core import Database
from mintpipe.messaging.broker import RETRY_TIERS, Broker
from mintpipe.pin_ledger import PinLedger
from mintpipe.runtime import metrics as shared_metrics
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import jobs_pb2
from status import metrics
from status.jobs.history import oldest_open_dead_letter
from status.jobs.store import JobStore

log = get_logger("status.overview")
RATE_WINDOW = 60.0
BROKER_TIMEOUT = 10.0  # an overview answers within this even when the broker hangs
# Replicas that moved a job lately: a window of ten minutes reads a sixth of the hour's rows (41 -> 7 ms here).
REPLICA_WINDOW = 600.0
# Several dashboards open at once (each polls every 3 s) share one snapshot this fresh.
SNAPSHOT_TTL = 2.0
GROWING_SAMPLES = 3
# render: out when a renderer takes the job (rendering); pin: in at `rendered`, out at `pinning`.
STAGE_FLOW = {"render": (jobs_pb2.STAGE_QUEUED, jobs_pb2.STAGE_RENDERING),
              "pin": (jobs_pb2.STAGE_RENDERED, jobs_pb2.STAGE_PINNING)}
# A retry's history row carries the stage its job waits in again: the renderer reports `queued`, the pinner
# `rendered` (their on_retry).
RETRY_STAGE = {jobs_pb2.STAGE_QUEUED: "render", jobs_pb2.STAGE_RENDERED: "pin"}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100) of `values`; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class QueueSampler:
    """Depth samples per queue across refreshes (for `growing`)."""

    samples: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)

    def add(self, name: str, depth: int, now: float) -> bool:
        series = self.samples.setdefault(name, deque(maxlen=GROWING_SAMPLES + 1))
        if not series or now - series[-1][0] >= 1.0:  # refreshes closer than a second say nothing new
            series.append((now, depth))
        values = [d for _, d in series]
        return len(values) > GROWING_SAMPLES and all(b > a for a, b in zip(values, values[1:], strict=False))


class Overview:
    def __init__(self, broker: Broker, store: JobStore, pin_ledger: Path | Database, monthly_pins: int | None,
                 events_applied=None, cache_seconds: float = SNAPSHOT_TTL, minters=None) -> None:
        self.cache_seconds = cache_seconds
        self.minters = minters  # () -> the minter replicas heard from (status.clients), or None: no chain
        self.broker = broker
        self.store = store
        self.pin_ledger_path = pin_ledger
        self.monthly_pins = monthly_pins
        self.sampler = QueueSampler()
        self._channel: AbstractChannel | None = None
        self._events_applied = events_applied  # () -> total events applied by this process
        self._events_seen: deque[tuple[float, float]] = deque(maxlen=120)
        self._counters: dict[str, deque[tuple[float, float]]] = {}
        self._ledger: PinLedger | None = None
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._snapshot_lock = asyncio.Lock()

    # --- broker ---------------------------------------------------------------------------------------------
    async def _declare(self, name: str) -> tuple[int, int] | None:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.broker.channel(1)
        try:
            # robust=False: a robust channel answers repeated passive declares from its cache (stale counts).
            q = await self._channel.declare_queue(name, passive=True, robust=False)
        except ChannelNotFoundEntity:  # a missing queue closes the channel; the next call opens another
            self._channel = None
            return None
        result = q.declaration_result
        return result.message_count or 0, result.consumer_count or 0

    async def queues(self, now: float) -> tuple[list[dict[str, Any]], bool]:
        topo = self.broker.topology
        stages = {"render": topo.render_queue, "pin": topo.pin_queue, "events": topo.status_queue}
        if self.minters is not None:
            stages["relay"] = topo.relay_queue  # the minter's: one active consumer sends, the others wait
            stages["watch"] = topo.watch_queue
        if not self.broker.connected:
            return [], False
        rows: list[dict[str, Any]] = []
        flows = {**await self._flows(now), **await self._side_flows(now)}
        oldest_dead = await oldest_open_dead_letter(self.store)
        oldest_waiting = await self._oldest_waiting(now)
        try:
            async with asyncio.timeout(BROKER_TIMEOUT):
                await self._declare_all(stages, rows, flows, oldest_dead, oldest_waiting, now)
        except (TimeoutError, AMQPError, ChannelInvalidStateError, OSError) as exc:
            # The broker hangs or went away: say so (figures unknown) rather than fail the whole overview.
            self._channel = None
            log.warning("queue figures unavailable", error=repr(exc))
            return [], False
        return rows, True

    async def _declare_all(self, stages: dict[str, str], rows: list[dict[str, Any]], flows, oldest_dead,
                           oldest_waiting, now: float) -> None:
        topo = self.broker.topology
        for stage, queue in stages.items():
            kinds = [("work", queue, None)] if stage == "watch" else [
                ("work", queue, None), ("dead", topo.dead_queue(queue), None),
                *(("retry", topo.retry_queue(queue, t), t) for t in RETRY_TIERS)]
            for kind, name, tier in kinds:
                got = await self._declare(name)
                if got is None:
                    rows.append({"stage": stage, "kind": kind, "queue": name, "missing": True})
                    continue
                depth, consumers = got
                row: dict[str, Any] = {"stage": stage, "kind": kind, "queue": name, "tier_seconds": tier,
                                       "depth": depth, "consumers": consumers,
                                       "growing": self.sampler.add(name, depth, now)}
                row["rate_in"], row["rate_out"] = flows.get(stage if kind == "work" else (stage, kind, tier),
                                                            (None, None))
                if kind == "retry" and (stage, kind, "all") in flows:  # known for the tiers together only
                    row["rate_in_all_tiers"] = flows[(stage, kind, "all")][0]
                if kind == "work":
                    row["oldest_age_s"] = 0.0 if depth == 0 else oldest_waiting.get(stage)
                    row["no_consumer"] = consumers == 0
                elif kind == "dead":
                    at = oldest_dead.get(stage)
                    row["oldest_age_s"] = (now - at) if depth and at else (0.0 if depth == 0 else None)
                else:
                    row["oldest_age_s"] = 0.0 if depth == 0 else None
                    row["oldest_at_most_s"] = tier
                rows.append(row)

    # --- job store ------------------------------------------------------------------------------------------
    async def _flows(self, now: float) -> dict[str, tuple[float | None, float | None]]:
        since = now - RATE_WINDOW
        db = self.store.db
        rows = await db.fetch(
            "SELECT stage, COUNT(*) FROM stage_history WHERE at >= ? AND stage IN (?,?,?) GROUP BY stage",
            (since, jobs_pb2.STAGE_RENDERING, jobs_pb2.STAGE_RENDERED, jobs_pb2.STAGE_PINNING))
        counts = {r[0]: r[1] for r in rows}
        counts[jobs_pb2.STAGE_QUEUED] = await db.fetchval(
            "SELECT COUNT(*) FROM jobs WHERE created_at >= ? AND published = 1", (since,))
        flows: dict[str, tuple[float | None, float | None]] = {
            stage: (counts.get(a, 0) / RATE_WINDOW, counts.get(b, 0) / RATE_WINDOW)
            for stage, (a, b) in STAGE_FLOW.items()}
        if self._events_applied is not None:
            total = float(self._events_applied())
            self._events_seen.append((now, total))
            old = next(((t, v) for t, v in self._events_seen if now - t <= RATE_WINDOW), None)
            rate = (total - old[1]) / (now - old[0]) if old and now - old[0] >= 1 else None
            flows["events"] = (rate, rate)  # applied events left the queue; in ≈ out unless it grows
        return flows

    async def _side_flows(self, now: float) -> dict[Any, tuple[float | None, float | None]]:
        """(stage, "retry", tier) and (stage, "dead", None) → messages a second in and out over the last minute."""
        since, longest = now - RATE_WINDOW, max(RETRY_TIERS)
        counts: dict[Any, list[int]] = {}
        # Rows that entered a tier within the last minute (in) or left it then (entered a tier's delay earlier).
        rows = await self.store.db.fetch(
            # CASE rather than SUM(boolean): the same SQL for SQLite and PostgreSQL.
            "SELECT stage, retry_in_s, SUM(CASE WHEN at >= ? THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN at + retry_in_s >= ? AND at + retry_in_s < ? THEN 1 ELSE 0 END) "
            "FROM retry_history WHERE at >= ? GROUP BY stage, retry_in_s",
            (since, since, now, since - longest))
        for stage, tier, entered, left in rows:
            if stage in RETRY_STAGE:
                key = (RETRY_STAGE[stage], "retry", tier)
                got = counts.setdefault(key, [0, 0])
                got[0], got[1] = got[0] + (entered or 0), got[1] + (left or 0)
        rows = await self.store.db.fetch(
            "SELECT queue, SUM(CASE WHEN at >= ? THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN replayed_at >= ? THEN 1 ELSE 0 END) FROM dead_letter_history "
            "WHERE at >= ? OR replayed_at >= ? GROUP BY queue", (since, since, since, since))
        for queue, entered, replayed in rows:
            counts[(queue, "dead", None)] = [entered or 0, replayed or 0]
        flows: dict[Any, tuple[float | None, float | None]] = {
            key: (a / RATE_WINDOW, b / RATE_WINDOW) for key, (a, b) in counts.items()}
        for tier in RETRY_TIERS:  # every tier of render and pin has figures, 0 when nothing moved
            for stage in ("render", "pin"):
                flows.setdefault((stage, "retry", tier), (0.0, 0.0))
        for stage in ("render", "pin"):
            flows.setdefault((stage, "dead", None), (0.0, 0.0))
        for kind, outcome in (("retry", "retried"), ("dead", "dead_lettered")):
            rate = self._events_rate(outcome, now)
            if kind == "dead":
                flows[("events", "dead", None)] = (rate, None)
            else:  # which tier is not counted: the in-rate of all the events queue's tiers
                flows[("events", "retry", "all")] = (rate, None)
        return flows

    def _events_rate(self, outcome: str, now: float) -> float | None:
        total = sum(s.value for m in shared_metrics.MESSAGES.collect() for s in m.samples
                    if s.name.endswith("_total") and s.labels.get("queue") == "events"
                    and s.labels.get("outcome") == outcome)
        seen = self._counters.setdefault(outcome, deque(maxlen=120))
        seen.append((now, total))
        old = next(((t, v) for t, v in seen if now - t <= RATE_WINDOW), None)
        return (total - old[1]) / (now - old[0]) if old and now - old[0] >= 1 else None

    async def _oldest_waiting(self, now: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for stage, sql, args in (
            ("render", "SELECT MIN(updated_at) FROM jobs WHERE stage = ? AND published = 1", (jobs_pb2.STAGE_QUEUED,)),
            ("pin", "SELECT MIN(updated_at) FROM jobs WHERE stage = ?", (jobs_pb2.STAGE_RENDERED,)),
        ):
            at = await self.store.db.fetchval(sql, args)
            if at is not None:
                out[stage] = max(0.0, now - at)
        return out

    async def jobs(self, now: float) -> dict[str, Any]:
        db = self.store.db
        by_stage = {STAGE_NAMES.get(r[0], str(r[0])): r[1]
                    for r in await db.fetch("SELECT stage, COUNT(*) FROM jobs GROUP BY stage")}
        hour = now - 3600
        pinned = await db.fetch(
            "SELECT at, took FROM stage_history WHERE stage = ? AND at >= ? AND took IS NOT NULL",
            (jobs_pb2.STAGE_PINNED, hour))
        failed = [r[0] for r in await db.fetch(
            "SELECT at FROM stage_history WHERE stage = ? AND at >= ?", (jobs_pb2.STAGE_FAILED, hour))]
        minutes: list[dict[str, Any]] = []
        start = math.floor(now / 60) * 60 - 59 * 60
        buckets: list[list[float]] = [[] for _ in range(60)]
        failed_per: list[int] = [0] * 60
        for at, took in pinned:
            i = int((at - start) // 60)
            if 0 <= i < 60:
                buckets[i].append(took)
        for at in failed:
            i = int((at - start) // 60)
            if 0 <= i < 60:
                failed_per[i] += 1
        for i, took in enumerate(buckets):
            minutes.append({"minute": start + i * 60, "pinned": len(took), "failed": failed_per[i],
                            "p50_s": percentile(took, 50), "p95_s": percentile(took, 95)})
        # INDEXED BY: SQLite's planner picked the (stage, at) index and scanned (bench/admin_overview.py);
        # PostgreSQL's planner has statistics and takes no such hint.
        indexed = " INDEXED BY stage_history_at" if db.engine == "sqlite" else ""
        rows = await db.fetch(
            f"SELECT replica, source, MAX(at), COUNT(*) FROM stage_history{indexed} "
            "WHERE at >= ? AND replica != '' AND source IN ('renderer', 'pinner') GROUP BY replica, source "
            "ORDER BY source, replica", (now - REPLICA_WINDOW,))
        replicas = [{"replica": r[0], "service": r[1], "last_seen_s": max(now - r[2], 0.0), "stage_changes": r[3]}
                    for r in rows]
        durations = [t for _, t in pinned]
        return {"by_stage": {name: by_stage.get(name, 0) for name in STAGE_NAMES.values()},
                "total": sum(by_stage.values()), "replicas": replicas,
                "replica_window_s": REPLICA_WINDOW,
                "last_hour": {"pinned": len(pinned), "failed": len(failed),
                              "time_to_pinned_p50_s": percentile(durations, 50),
                              "time_to_pinned_p95_s": percentile(durations, 95), "per_minute": minutes}}

    async def _pins(self, now: float) -> dict[str, Any]:
        shared = isinstance(self.pin_ledger_path, Database)  # PostgreSQL: the store's own pool, kept open
        if self._ledger is None or not shared:
            # A SQLite file is opened for each (cached) overview and closed again, as the sync ledger did: no
            # connection (and its thread) outlives the request.
            self._ledger = PinLedger(self.pin_ledger_path)
        try:
            used = await self._ledger.pins_this_month(now)
            last = await self._ledger.last_rate_limited()
            blocked = await self._ledger.blocked_until() if last else None
        finally:
            if not shared:
                await self._ledger.close()
        return {"used_this_month": used, "monthly_budget": self.monthly_pins,
                "left": None if self.monthly_pins is None else max(self.monthly_pins - used, 0),
                "last_429_at": last[0] if last else None, "last_429_retry_after_s": last[1] if last else None,
                "blocked_until": blocked}

    async def export_gauges(self) -> None:
        """Queue depths and consumers, and the pin budget, into the Prometheus gauges (at scrape time)."""
        now = time.time()
        queues, _ok = await self.queues(now)
        for q in queues:
            if not q.get("missing"):
                labels = (q["stage"], q["kind"], q["queue"])
                metrics.QUEUE_DEPTH.labels(*labels).set(q["depth"])
                metrics.QUEUE_CONSUMERS.labels(*labels).set(q["consumers"])
        pins = await self._pins(now)
        metrics.PINS_THIS_MONTH.set(pins["used_this_month"])
        metrics.PIN_BUDGET_LEFT.set(-1 if pins["left"] is None else pins["left"])

    async def snapshot(self) -> dict[str, Any]:
        async with self._snapshot_lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            result = await self._snapshot()
            self._cached = (time.monotonic(), result)
            return result

    async def _snapshot(self) -> dict[str, Any]:
        now = time.time()
        queues, broker_ok = await self.queues(now)
        jobs = await self.jobs(now)
        pins = await self._pins(now)
        warnings = []
        for q in queues:
            if q.get("missing"):
                warnings.append({"level": "error", "queue": q["queue"], "text": f"{q['queue']} does not exist"})
            elif q.get("no_consumer"):
                warnings.append({"level": "error", "queue": q["queue"],
                                 "text": f"no consumer on {q['stage']}: nothing takes its jobs"
                                         + (f" ({q['depth']} waiting)" if q["depth"] else "")})
            if q.get("growing"):
                warnings.append({"level": "warn", "queue": q["queue"],
                                 "text": f"{q['queue']} is growing ({q['depth']})"})
            if q.get("kind") == "dead" and q.get("depth"):
                warnings.append({"level": "warn", "queue": q["queue"],
                                 "text": f"{q['depth']} dead letter(s) in {q['stage']}: replay or investigate"})
        if not broker_ok:
            warnings.insert(0, {"level": "error", "queue": None, "text": "broker unreachable: queue figures unknown"})
        if pins["left"] is not None and pins["monthly_budget"] and pins["left"] < 0.1 * pins["monthly_budget"]:
            warnings.append({"level": "warn", "queue": None, "text": f"pin budget nearly spent ({pins['left']} left)"})
        minters = None
        if self.minters is not None:
            minters = await self.minters()
            if minters is None:
                warnings.append({"level": "error", "queue": None, "text": "the minter does not answer: no vouchers, "
                                 "no reported mints, relays wait in their queue"})
            elif not minters:
                warnings.append({"level": "error", "queue": None, "text": "no minter replica was heard from in the "
                                 "last minute"})
            elif not any(m["watching"] for m in minters):
                warnings.append({"level": "warn", "queue": None, "text": "no minter replica is watching the chain"})
            if minters and not any(m["relayer"] for m in minters):  # relays off: nothing is meant to consume it
                warnings = [w for w in warnings if not (w["queue"] == self.broker.topology.relay_queue
                                                        and "no consumer" in w["text"])]
        return {"at": now, "broker_connected": broker_ok, "queues": queues, "jobs": jobs, "pins": pins,
                "minters": minters, "warnings": warnings}
