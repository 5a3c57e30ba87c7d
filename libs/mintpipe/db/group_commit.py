"""Group commit for an SQLite file: writes from many coroutines share one transaction and one fsync.

Each write is a plain function of a `sqlite3.Connection`, run on one writer thread. The thread takes every
write queued while the previous commit was syncing, runs each inside its own SAVEPOINT (a write that raises
is rolled back alone and its caller gets the exception), then COMMITs once; every caller's await returns only
after that COMMIT, so "acked after commit" and "stored before the 202" still hold. Measured on the bridge at
~200 submissions a second (bench/bridge.py): the job store's commits were serialized behind one asyncio lock
with an fsync each (~0.5 ms, tens of ms when the shared disk is busy), so the queue behind the lock was the
submit path's tail; batched, one fsync serves every write that arrived meanwhile, and a write is one hop to
the thread instead of one per statement (aiosqlite).

Two kinds of write share the batches: a function (`run`: the whole write is one hop to the thread) and a session
(`session()`: an `async with` body on the event loop sends its statements one by one, each a hop, while the
thread holds its SAVEPOINT open; later writes of the batch wait for it, as they waited for the asyncio lock
before). Sessions let every write of a mintpipe.db.core SqliteDatabase go through this one connection, so writes of
one process never contend for the file lock with each other (SQLite's busy handler sleeps 1, 2, 5, 10... ms).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# A bound on one transaction, so a burst cannot hold the write lock long against the other processes.
MAX_BATCH = 256
_STOP = object()
_SESSION = object()  # a batch item's marker: (committed future, _SESSION, the _Session)
_END_OK = object()  # a session's body ended: release its savepoint
_END_FAILED = object()  # a session's body raised (or was cancelled): roll its savepoint back


class _Session:
    """An open write on the writer thread, fed statements from its caller's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.started = loop.create_future()  # the thread reached it: its SAVEPOINT is open
        self.committed = loop.create_future()  # the batch holding it committed
        self.requests: queue.SimpleQueue[Any] = queue.SimpleQueue()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs `fn(connection, *args)` on the writer thread inside this session; its result."""
        future: asyncio.Future[T] = self.loop.create_future()
        self.requests.put((future, fn, args))
        return await future


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

    @asynccontextmanager
    async def session(self) -> AsyncIterator[_Session]:
        """An atomic write whose statements come one by one (`await session.call(fn, *args)`); on leaving the
        block it is committed (the await returns after the COMMIT), or rolled back alone if the block raised."""
        if self._thread is None:
            raise RuntimeError("GroupCommit.start() first")
        session = _Session(asyncio.get_running_loop())
        self._queue.put((session.committed, _SESSION, session))
        ended = False
        try:
            await session.started
            yield session
            ended = True
        finally:
            # Always tell the thread, even when cancelled: it waits for this to go on with the batch.
            session.requests.put(_END_OK if ended else _END_FAILED)
            if not ended:
                session.committed.cancel()  # nobody will await it
        await session.committed

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
                if write is _SESSION:
                    if _serve(db, args):
                        db.execute("RELEASE one_write")
                        results.append((future, None, None))
                    else:
                        db.execute("ROLLBACK TO one_write")
                        db.execute("RELEASE one_write")
                    continue
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
            failed = [(future, None, exc) for future, _, _ in batch]
            # A session not reached yet waits for its start, not its commit.
            failed += [(args.started, None, exc) for _, write, args in batch if write is _SESSION]
            return failed
        self.batches += 1
        self.writes += len(batch)
        return results


def _serve(db: sqlite3.Connection, session: _Session) -> bool:
    """Runs a session's statements as they come; True when its body ended well (keep its writes)."""
    _wake([(session.started, None, None)])
    while True:
        request = session.requests.get()
        if request is _END_OK:
            return True
        if request is _END_FAILED:
            return False
        future, fn, args = request
        try:
            result = fn(db, *args)
        except Exception as exc:  # e.g. a constraint: the caller decides (the savepoint is still open)
            _wake([(future, None, exc)])
        else:
            _wake([(future, result, None)])


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
