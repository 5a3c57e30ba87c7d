"""Which status replica runs the jobs only one may run at a time: the orphan, retention and artifact sweepers
and the chain watcher and relayer (issue 11).

With MINTPIPE_DATABASE_URL set to PostgreSQL, the leader is whoever holds a session-level advisory lock on a
connection of its own. The lock lives as long as that connection: when the leader dies, even by kill -9, the
kernel closes its socket, PostgreSQL ends the session and frees the lock, and a follower, which tries every
STATUS_LEADER_RETRY_SECONDS (default 1), takes it over. bench/replica_lag.py, kill -9 -> the other leads:
median 0.63 s, max 0.84 s over 8 kills (other runs: max 0.87 s, 0.99 s). A leader that loses its connection
(database restart, network) stops its duties as soon as its heartbeat fails and competes again. Without
PostgreSQL (one replica on SQLite) this replica leads alone.

The duties are idempotent (the sweepers re-check each job in the store; the watcher resumes from its stored
cursor), so the short overlap a lost-but-unnoticed connection could allow until the heartbeat fails (at most
HEARTBEAT_SECONDS + its timeout) does no harm beyond repeated work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from mintpipe.db.replica import LOCK_NAMESPACE, connect
from mintpipe.runtime.log import get_logger

log = get_logger("status.leader")

Duty = Callable[[], Coroutine[Any, Any, None]]
HEARTBEAT_SECONDS = 2.0


class Leadership:
    """Runs `duties` (each a coroutine factory) while this replica leads; stops them when it no longer does."""

    def __init__(self, replica: str, dsn: str | None = None, retry_seconds: float = 1.0) -> None:
        self.replica = replica
        self.dsn = dsn
        self.retry_seconds = retry_seconds
        self.is_leader = False
        self.duties: list[tuple[str, Duty]] = []
        self._running: list[asyncio.Task[None]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, name: str, duty: Duty) -> None:
        self.duties.append((name, duty))

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.replica, "leader": self.is_leader}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._resign()

    async def _run(self) -> None:
        if self.dsn is None:
            self._lead()
            await asyncio.Event().wait()
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self.dsn)
                # Polled rather than blocking in pg_advisory_lock: a follower's connection stays checkable.
                got = False
                while not got:
                    # Scoped to the schema: systems sharing a database in schemas of their own lead apart.
                    got = await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
                                              LOCK_NAMESPACE)
                    if not got:
                        await asyncio.sleep(self.retry_seconds)
                self._lead()
                while True:  # hold it; a dead connection ends the leadership
                    await asyncio.sleep(HEARTBEAT_SECONDS)
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), HEARTBEAT_SECONDS)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if self.is_leader:
                    log.warning("lost the leader lock's connection; stepping down", error=type(exc).__name__)
                await self._resign()
            finally:
                if conn is not None:
                    conn.terminate()  # frees the lock at once if we still held it
            await asyncio.sleep(self.retry_seconds)

    def _lead(self) -> None:
        self.is_leader = True
        log.info("this replica is the leader", replica=self.replica, duties=[name for name, _ in self.duties])
        self._running = [asyncio.create_task(duty(), name=name) for name, duty in self.duties]

    async def _resign(self) -> None:
        was = self.is_leader
        self.is_leader = False
        for task in self._running:
            task.cancel()
        for task in self._running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._running = []
        if was:
            log.info("no longer the leader", replica=self.replica)
