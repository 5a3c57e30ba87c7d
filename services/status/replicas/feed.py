"""The change feed between status replicas: every replica's SSE and gRPC Watch clients see every change of
their job live, whichever replica consumed the event (issue 11).

Each replica announces the id of a job it changed with PostgreSQL NOTIFY on one channel; every replica
LISTENs on it and, when one of its own clients watches that job, re-reads the job from the shared store and
hands it to them (status.jobs.bus). A watcher on replica B therefore sees an event consumed on replica A one
NOTIFY plus one store read later. Nothing is lost if a notification is: watchers still re-read the store every
POLL_SECONDS (status.jobs.bus), and a listener that loses its connection reconnects with backoff.

Why NOTIFY rather than a RabbitMQ fanout exchange (bench/replica_lag.py, this machine: 2 cores shared with
other work, load average ~7; loopback; 2,000 messages each, sent one at a time):
  - delivery lag: NOTIFY median 0.11 ms / p95 0.55 ms; fanout (publisher confirms, an exclusive auto-delete
    queue per replica, no-ack consumer) median 0.36 ms / p95 2.3 ms: NOTIFY is 3x faster at the median and 4x
    at p95 (another run: 0.17 / 3.3 ms vs 1.3 / 8.2 ms), and both are far below what a watcher notices.
    End to end, with the job store on PostgreSQL, an SSE watcher on replica B sees an event applied on
    replica A 8.2 ms (median; p95 23.7 ms) after the apply began, against 6.1 ms (p95 18.0 ms) for a watcher
    on A itself: 1.35x, the difference being one NOTIFY and one store read.
  - moving parts: NOTIFY needs nothing but the database the replicas must share anyway (no queue per
    replica to declare, to leak when a replica is killed, or to count against the broker's file handles,
    which a test run already exhausted once: see scripts/bootstrap.sh), and a replica that cannot reach the
    database cannot serve the job anyway, so the feed fails exactly when the store does.
  - limits: a payload is at most 8,000 bytes (ours is a replica name and a 32-hex id, ~50 bytes) and
    PostgreSQL queues up to 8 GB of undelivered notifications; at 1,000 changes/s one sender connection
    batches them (one statement for whatever is waiting).
Delivery is at most once (a listener that is reconnecting misses what was sent meanwhile): the poll above
covers that gap, so no watcher ever waits longer than POLL_SECONDS for a change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg

from mintpipe.db.replica import connect, schema_of
from mintpipe.runtime.log import get_logger
from status.jobs.bus import JobBus
from status.jobs.records import JobRecord

log = get_logger("status.feed")

CHANNEL_PREFIX = "mintpipe_jobs_"  # + the schema: systems sharing a database in schemas of their own stay apart
BATCH = 500  # ids sent in one statement at most
_SEND = "SELECT pg_notify($1, $2 || '|' || job_id) FROM unnest($3::text[]) AS job_id"
RECONNECT_MAX_SECONDS = 10.0


async def channel_of(conn: asyncpg.Connection) -> str:
    return (CHANNEL_PREFIX + await schema_of(conn))[:63]  # a channel name is at most 63 bytes


class PgChangeFeed:
    def __init__(self, dsn: str, bus: JobBus, load: Callable[[str], Awaitable[JobRecord | None]],
                 replica: str) -> None:
        self.dsn = dsn
        self.bus = bus
        self.load = load
        self.replica = replica
        self.connected = False
        self.channel: str | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._reloading: dict[str, bool] = {}  # job id -> another announcement came while re-reading it
        self._tasks: list[asyncio.Task[None]] = []
        self._listener_lost = asyncio.Event()

    async def start(self) -> None:
        self.bus.relay = self._outbox.put_nowait
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._send())]

    async def stop(self) -> None:
        self.bus.relay = None
        for _ in range(50):  # up to 1 s for the last announcements (a drain's final events) to go out
            if self._outbox.empty():
                break
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        backoff = 0.2
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self.dsn)
                self.channel = self.channel or await channel_of(conn)
                self._listener_lost.clear()
                conn.add_termination_listener(lambda _conn: self._listener_lost.set())
                await conn.add_listener(self.channel, self._on_notify)
                self.connected, backoff = True, 0.2
                log.info("change feed listening", channel=self.channel)
                while not self._listener_lost.is_set():
                    # A half-open connection sends no termination: ask it something now and then.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._listener_lost.wait(), 5.0)
                    if not self._listener_lost.is_set():
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), 5.0)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("change feed listener lost; watchers fall back to polling", error=type(exc).__name__)
            finally:
                self.connected = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        replica, _, job_id = payload.rpartition("|")
        if replica == self.replica or not self.bus.watching(job_id):
            return  # our own change (already fanned out) or nobody here watches that job
        if job_id in self._reloading:
            self._reloading[job_id] = True  # re-read once more when the current read returns
            return
        self._reloading[job_id] = False
        asyncio.get_running_loop().create_task(self._reload(job_id))

    async def _reload(self, job_id: str) -> None:
        try:
            while True:
                record = await self.load(job_id)
                if record is not None:
                    self.bus.publish_local(record)
                if not self._reloading.get(job_id):
                    return
                self._reloading[job_id] = False
        except Exception as exc:  # the watchers' poll re-reads it later
            log.warning("change feed could not re-read a job", job_id=job_id, error=type(exc).__name__)
        finally:
            self._reloading.pop(job_id, None)

    async def _send(self) -> None:
        backoff = 0.2
        conn: asyncpg.Connection | None = None
        batch: list[str] = []
        while True:
            if not batch:
                batch.append(await self._outbox.get())
                while len(batch) < BATCH and not self._outbox.empty():
                    batch.append(self._outbox.get_nowait())
            try:
                if conn is None or conn.is_closed():
                    conn = await connect(self.dsn)
                    self.channel = self.channel or await channel_of(conn)
                await conn.execute(_SEND, self.channel, self.replica, batch)
                batch, backoff = [], 0.2
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                # Kept and resent: the other replicas' watchers also poll, so a late announcement is harmless.
                log.warning("change feed cannot announce; retrying", pending=len(batch), error=type(exc).__name__)
                if conn is not None:
                    conn.terminate()
                    conn = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
