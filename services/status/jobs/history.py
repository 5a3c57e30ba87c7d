"""What operators need beyond the job record, in tables of their own beside `jobs` (same SQLite file):

- stage_history: every stage change of a job, when, from which service and replica, with the error if any;
- retry_history: every transient failure of a job, its reason and how long it waits in a retry tier;
- dead_letter_history: every message dead-lettered from the render and pin queues (seen by the status
  service's dead-letter watch), with its reason, and when it was replayed;
- admin_audit: every operator action (who, when, what, on what, outcome).

All survive restarts (unlike a broker UI's in-memory state). They live in the job store's database, either
engine (mintpipe.db.core; tables made by the migration 0003_ops). One INSERT is its own transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from mintpipe.core.stages import STAGE_NAMES
from mintpipe.db.core import Conn
from mintpipe.v1 import jobs_pb2
from status import metrics
from status.jobs.store import JobStore


async def note_stage(store: JobStore, job_id: str, stage: int, source: str, replica: str, error: str = "",
                     at: float | None = None, changed: bool = False) -> bool:
    """Record a stage change unless the job's last recorded stage is already `stage` (progress events within a
    stage add nothing). A job reopened by a replay goes through its stages again, and that shows too. Also
    observes the stage-duration histograms (status.metrics) from the same rows.

    `changed=True`: the caller's own compare-and-set moved the job into `stage` (JobStore.apply_changed), so no
    other applier records this change: no lock and no check needed."""
    last_sql = "SELECT stage, at FROM stage_history WHERE job_id = ? ORDER BY id DESC LIMIT 12"
    if changed:
        async def record(conn: Conn) -> None:
            earlier = [(r[0], r[1]) for r in await conn.fetch(last_sql, (job_id,))]
            now = time.time() if at is None else at
            took = await _observe(conn, job_id, stage, now, earlier)
            await conn.execute(
                "INSERT INTO stage_history (job_id, stage, at, source, replica, error, took) VALUES (?,?,?,?,?,?,?)",
                (job_id, stage, now, source, replica, error[:1000], took))
        # SQLite: one write on the store's writer thread, queued the moment the caller's stage change is
        # committed (no read hop first), so two changes of one job committed together are recorded in their order.
        await store.db.write(record)
        return True
    # Read and write as one: events of one job are applied concurrently (prefetch, and on PostgreSQL by several
    # replicas), and two progress events of a new stage read in between would both record it (and observe its
    # span twice). SQLite: the connection's lock; PostgreSQL: an advisory lock on the job, held to the commit.
    if store.db.engine != "sqlite":
        # Most events are progress within the stage already recorded: on PostgreSQL settle those with one read,
        # outside any transaction (a recorded stage never goes away), rather than BEGIN, lock, read, COMMIT.
        last = await store.db.fetchrow(last_sql.replace("LIMIT 12", "LIMIT 1"), (job_id,))
        if last is not None and last[0] == stage:
            return False
    async with store.db.locked(f"stage_history:{job_id}") as conn:
        earlier = [(r[0], r[1]) for r in await conn.fetch(last_sql, (job_id,))]
        if earlier and earlier[0][0] == stage:
            return False
        now = time.time() if at is None else at
        took = await _observe(conn, job_id, stage, now, earlier)
        await conn.execute(
            "INSERT INTO stage_history (job_id, stage, at, source, replica, error, took) VALUES (?,?,?,?,?,?,?)",
            (job_id, stage, now, source, replica, error[:1000], took))
    return True


async def _observe(conn: Conn, job_id: str, stage: int, now: float,
                   earlier: list[tuple[int, float]]) -> float | None:
    """Observes the stage-duration histograms; returns the time from queued to pinned on a `pinned` change."""
    def last(of: int) -> float | None:
        return next((t for s, t in earlier if s == of), None)

    async def queued_at() -> float | None:
        # The job's queued moment: its creation (reservation does not pass through events) or its reopening.
        reopened = last(jobs_pb2.STAGE_QUEUED)
        if reopened is not None:
            return reopened
        return await conn.fetchval("SELECT created_at FROM jobs WHERE job_id = ?", (job_id,))

    spans: list[tuple[str, float | None]] = []
    if stage == jobs_pb2.STAGE_RENDERING:
        spans.append(("queued_to_rendering", await queued_at()))
    elif stage == jobs_pb2.STAGE_RENDERED:
        spans.append(("render", last(jobs_pb2.STAGE_RENDERING)))
    elif stage == jobs_pb2.STAGE_PINNED:
        spans += [("pin", last(jobs_pb2.STAGE_RENDERED)), ("queued_to_pinned", await queued_at())]
    elif stage == jobs_pb2.STAGE_MINTED:
        spans.append(("pinned_to_minted", last(jobs_pb2.STAGE_PINNED)))
    took = None
    for span, start in spans:
        if start is not None:
            metrics.STAGE_SECONDS.labels(span).observe(max(now - start, 0.0))
            if span == "queued_to_pinned":
                took = max(now - start, 0.0)
    if stage in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_MINTED, jobs_pb2.STAGE_FAILED):
        metrics.JOBS_FINISHED.labels(STAGE_NAMES[stage]).inc()
    return took


async def _job_rows(store: JobStore, table: str, columns: str, job_id: str) -> list[dict[str, Any]]:
    """One job's rows of a history table, oldest first (the tables and columns are this module's own)."""
    rows = await store.db.fetch(f"SELECT {columns} FROM {table} WHERE job_id = ? ORDER BY id", (job_id,))
    return [dict(r) for r in rows]


async def stage_history(store: JobStore, job_id: str) -> list[dict[str, Any]]:
    return await _job_rows(store, "stage_history", "stage, at, source, replica, error", job_id)


async def note_retry(store: JobStore, job_id: str, stage: int, attempt: int, retry_in_s: int, reason: str,
                     source: str, replica: str) -> None:
    metrics.RETRIES.labels(STAGE_NAMES.get(stage, "unknown")).inc()
    await store.db.execute(
        "INSERT INTO retry_history (job_id, stage, attempt, retry_in_s, reason, source, replica, at) "
        "VALUES (?,?,?,?,?,?,?,?)",
        (job_id, stage, attempt, retry_in_s, reason[:1000], source, replica, time.time()))


async def retry_history(store: JobStore, job_id: str) -> list[dict[str, Any]]:
    return await _job_rows(store, "retry_history", "stage, attempt, retry_in_s, reason, source, replica, at", job_id)


async def note_dead_letter(store: JobStore, job_id: str, queue: str, message_id: str, reason: str,
                           dead_lettered_by: str) -> None:
    metrics.DEAD_LETTERS.labels(queue).inc()
    await store.db.execute(
        "INSERT INTO dead_letter_history (job_id, queue, message_id, reason, dead_lettered_by, at) "
        "VALUES (?,?,?,?,?,?)", (job_id, queue, message_id, reason[:1000], dead_lettered_by, time.time()))


async def note_replayed(store: JobStore, queue: str, message_ids: list[str]) -> None:
    if not message_ids:
        return
    marks = ",".join("?" * len(message_ids))
    await store.db.execute(
        f"UPDATE dead_letter_history SET replayed_at = ? WHERE queue = ? AND replayed_at IS NULL "
        f"AND message_id IN ({marks})", (time.time(), queue, *message_ids))


async def dead_letter_history(store: JobStore, job_id: str) -> list[dict[str, Any]]:
    return await _job_rows(store, "dead_letter_history", "queue, message_id, reason, dead_lettered_by, at, replayed_at",
                           job_id)


async def open_dead_letters(store: JobStore, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """job id → its latest dead letter not replayed yet (queue, reason, at), for the given jobs."""
    if not job_ids:
        return {}
    marks = ",".join("?" * len(job_ids))
    rows = await store.db.fetch(
        f"SELECT job_id, queue, reason, at FROM dead_letter_history WHERE replayed_at IS NULL AND job_id IN ({marks}) "
        "ORDER BY id", job_ids)
    return {r[0]: {"queue": r[1], "reason": r[2], "at": r[3]} for r in rows}


async def oldest_open_dead_letter(store: JobStore) -> dict[str, float]:
    """queue → time of its oldest dead letter not replayed yet (what the broker cannot tell without a browse)."""
    rows = await store.db.fetch(
        "SELECT queue, MIN(at) FROM dead_letter_history WHERE replayed_at IS NULL GROUP BY queue")
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]


async def audit(store: JobStore, entry: AuditEntry) -> None:
    await store.db.execute(
        "INSERT INTO admin_audit (at, actor, action, target, outcome, detail_json) VALUES (?,?,?,?,?,?)",
        (time.time(), entry.actor, entry.action, entry.target, entry.outcome,
         json.dumps(entry.detail, sort_keys=True, default=str)[:4000]))


async def audit_page(store: JobStore, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
    sql = "SELECT id, at, actor, action, target, outcome, detail_json FROM admin_audit"
    args: list[Any] = []
    if before is not None:
        sql += " WHERE id < ?"
        args.append(before)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    rows = await store.db.fetch(sql, args)
    return [{**{k: r[k] for k in ("id", "at", "actor", "action", "target", "outcome")},
             "detail": json.loads(r["detail_json"])} for r in rows]
