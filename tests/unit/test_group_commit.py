"""Group commit: concurrent writes share transactions, each is durable when its await returns, and a write that
fails is rolled back alone."""

import asyncio
import sqlite3

import pytest

from mintpipe.db.group_commit import GroupCommit

pytestmark = pytest.mark.unit


@pytest.fixture
async def writer(tmp_path):
    w = GroupCommit(tmp_path / "g.sqlite3")
    await w.start()
    await w.run(lambda db: db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"))
    yield w
    await w.stop()


def insert(db: sqlite3.Connection, k: str, v: int) -> int:
    return db.execute("INSERT INTO t VALUES (?, ?)", (k, v)).lastrowid


def insert_then_fail(db: sqlite3.Connection, k: str) -> None:
    db.execute("INSERT INTO t VALUES (?, 0)", (k,))
    raise ValueError(f"{k}: refused")


async def test_concurrent_writes_share_commits_and_are_visible_once_awaited(writer, tmp_path):
    before = writer.batches
    await asyncio.gather(*(writer.run(insert, f"k{i}", i) for i in range(200)))
    # Another connection (another process, say) sees every row as soon as the awaits returned.
    with sqlite3.connect(tmp_path / "g.sqlite3") as other:
        assert other.execute("SELECT COUNT(*), SUM(v) FROM t").fetchone() == (200, sum(range(200)))
    assert writer.batches - before < 200  # queued writes were committed together


async def test_a_failing_write_is_rolled_back_alone(writer, tmp_path):
    results = await asyncio.gather(writer.run(insert, "a", 1), writer.run(insert_then_fail, "b"),
                                   writer.run(insert, "a", 2), writer.run(insert, "c", 3), return_exceptions=True)
    assert isinstance(results[1], ValueError) and str(results[1]) == "b: refused"
    assert isinstance(results[2], sqlite3.IntegrityError)  # the duplicate key, its caller told
    with sqlite3.connect(tmp_path / "g.sqlite3") as other:
        assert other.execute("SELECT k, v FROM t ORDER BY k").fetchall() == [("a", 1), ("c", 3)]


async def test_a_write_before_start_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="start"):
        await GroupCommit(tmp_path / "x.sqlite3").run(insert, "a", 1)


# --- the SQLite engine of mintpipe.db.core: every write goes through its group commit ------------------------------

@pytest.fixture
async def sqlite_db(tmp_path):
    from mintpipe.db.core import SqliteDatabase
    db = SqliteDatabase(tmp_path / "e.sqlite3")
    await db.open()
    await db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    yield db
    await db.close()


async def test_engine_writes_of_every_kind_share_commits_and_are_committed_when_awaited(sqlite_db, tmp_path):
    async def body(tx, k):
        await tx.execute("INSERT INTO t VALUES (?, 1)", (k,))
        return await tx.fetchval("SELECT COUNT(*) FROM t WHERE k = ?", (k,))

    async def in_transaction(k):
        async with sqlite_db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (?, 2)", (k,))

    before = sqlite_db.writer.batches
    results = await asyncio.gather(*(sqlite_db.transact(lambda tx, k=f"a{i}": body(tx, k)) for i in range(50)),
                                   *(sqlite_db.execute("INSERT INTO t VALUES (?, 3)", (f"b{i}",)) for i in range(50)),
                                   *(in_transaction(f"c{i}") for i in range(20)))
    assert results == [1] * 100 + [None] * 20
    with sqlite3.connect(tmp_path / "e.sqlite3") as other:  # durable for another process once awaited
        assert other.execute("SELECT COUNT(*), SUM(v) FROM t").fetchone() == (120, 50 * 1 + 50 * 3 + 20 * 2)
    assert sqlite_db.writer.batches - before < 120
    # The reader sees every committed write too; an INSERT ... RETURNING through fetch is a write, committed.
    assert await sqlite_db.fetchval("SELECT COUNT(*) FROM t") == 120
    assert (await sqlite_db.fetchrow("INSERT INTO t VALUES ('r', 9) RETURNING v"))["v"] == 9
    with sqlite3.connect(tmp_path / "e.sqlite3") as other:
        assert other.execute("SELECT v FROM t WHERE k = 'r'").fetchone() == (9,)


async def test_engine_transaction_that_raises_is_rolled_back_alone(sqlite_db):
    async def failing():
        async with sqlite_db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES ('x', 1)")
            assert await tx.fetchval("SELECT v FROM t WHERE k = 'x'") == 1  # its own write, seen inside
            raise ValueError("refused")

    async def failing_body(tx):
        await tx.execute("INSERT INTO t VALUES ('y', 1)")
        raise KeyError("y")

    results = await asyncio.gather(sqlite_db.execute("INSERT INTO t VALUES ('a', 1)"), failing(),
                                   sqlite_db.transact(failing_body), sqlite_db.execute("INSERT INTO t VALUES ('b', 2)"),
                                   return_exceptions=True)
    assert results[0] == 1 and results[3] == 1
    assert isinstance(results[1], ValueError) and isinstance(results[2], KeyError)
    assert [tuple(r) for r in await sqlite_db.fetch("SELECT k, v FROM t ORDER BY k")] == [("a", 1), ("b", 2)]


async def test_engine_cancelled_transaction_leaves_nothing_and_the_writer_goes_on(sqlite_db):
    entered = asyncio.Event()

    async def slow():
        async with sqlite_db.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES ('gone', 1)")
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await sqlite_db.execute("INSERT INTO t VALUES ('after', 1)") == 1
    assert [r[0] for r in await sqlite_db.fetch("SELECT k FROM t")] == ["after"]


async def test_engine_transact_body_that_awaits_anything_else_is_refused(sqlite_db):
    async def body(tx):
        await tx.execute("INSERT INTO t VALUES ('z', 1)")
        await asyncio.sleep(0)  # suspends (a bare yield to the loop) without needing one

    with pytest.raises(RuntimeError, match="awaited something other"):
        await sqlite_db.transact(body)
    assert await sqlite_db.fetchval("SELECT COUNT(*) FROM t") == 0
