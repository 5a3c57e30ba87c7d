"""Group commit: concurrent writes share transactions, each is durable when its await returns, and a write that
fails is rolled back alone."""

import asyncio
import sqlite3

import pytest

from mintpipe.group_commit import GroupCommit

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
