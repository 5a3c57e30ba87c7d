"""Group commit for an SQLite file: writes from many coroutines share one transaction and one fsync.

Each write is a plain function of a `sqlite3.Connection`, run on one writer thread. The thread takes every
write queued while the previous commit was syncing, runs each inside its own SAVEPOINT (a write that raises
is rolled back alone and its caller gets the exception), then COMMITs once; every caller's await returns only
after that COMMIT, so "acked after commit" and "stored before the 202" still hold. Measured on the bridge at
~200 submissions a second (bench/bridge.py): the job store's commits were serialized behind one asyncio lock
with an fsync each (~0.5 ms, tens of ms when the shared disk is busy), so the queue behind the lock was the
submit path's tail; batched, one fsync serves every write that arrived meanwhile, and a write is one hop to
the thread instead of one per statement (aiosqlite).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# A bound on one transaction, so a burst cannot hold the write lock long against the other processes.
MAX_BATCH = 256
_STOP = object()


class GroupCommit:
    def __init__(self, path: Path, synchronous: str = "FULL", busy_timeout_ms: int = 30000) -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._opened: asyncio.Future[None] | None = None
        self.batches = 0  # transactions committed, and the writes in them (writes / batches: the grouping)
        self.writes = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        self._thread = threading.Thread(target=self._run, name=f"group-commit:{self.path.name}", daemon=True)
        self._thread.start()
        await self._opened

    async def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    async def run(self, write: Callable[..., T], *args: Any) -> T:
        """Runs `write(connection, *args)` in the next transaction; returns its result once committed."""
        if self._thread is None:
            raise RuntimeError("GroupCommit.start() first")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((future, write, args))
        return await future

    # --- the writer thread ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000,
                             check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        return db

    def _run(self) -> None:
        assert self._opened is not None
        try:
            db = self._connect()
        except BaseException as exc:  # handed to the awaiting start()
            _wake([(self._opened, None, exc)])
            return
        _wake([(self._opened, None, None)])
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    batch.append(more)
                _wake(self._commit(db, batch))
                if stop:
                    return
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, batch: list[Any]) -> list[tuple[Any, Any, BaseException | None]]:
        results: list[tuple[Any, Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for future, write, args in batch:
                db.execute("SAVEPOINT one_write")
                try:
                    result = write(db, *args)
                except Exception as exc:  # the caller's exception, raised at its await
                    db.execute("ROLLBACK TO one_write")
                    db.execute("RELEASE one_write")
                    results.append((future, None, exc))
                else:
                    db.execute("RELEASE one_write")
                    results.append((future, result, None))
            db.execute("COMMIT")
        except Exception as exc:  # nothing was committed: every caller learns it
            if db.in_transaction:
                db.execute("ROLLBACK")
            return [(future, None, exc) for future, _, _ in batch]
        self.batches += 1
        self.writes += len(batch)
        return results


def _wake(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """One wake-up of each waiting event loop for the whole batch, not one per write (callers on several loops,
    as in tests, each get theirs)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for item in results:
        by_loop.setdefault(item[0].get_loop(), []).append(item)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in results:
        if future.done():  # the caller was cancelled; the write stands (it was committed)
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
