"""mintpipe.rpc.coalesce.Coalescer: each caller answered as if alone, whatever the batch's call does (fails, is
cancelled, answers the wrong number), within its byte cap, with a few batches in flight and a queue deadline."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from mintpipe.rpc.coalesce import Coalescer, Unavailable

pytestmark = pytest.mark.unit


class Peer:
    """The far side of the batched call: records every batch, answers each item doubled, or holds until let go."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        if not hold:
            self.gate.set()
        self.in_flight = 0
        self.most_in_flight = 0

    async def send(self, items: list[int]) -> list[object]:
        self.batches.append(list(items))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        return [ValueError(f"odd {i}") if i < 0 else i * 2 for i in items]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_calls_of_one_moment_share_a_batch_and_each_gets_its_own_answer():
    peer = Peer()
    batcher = Coalescer(peer.send)
    results = await asyncio.gather(*(batcher.call(i) for i in range(10)), return_exceptions=True)
    assert results == [i * 2 for i in range(10)]
    assert peer.batches == [list(range(10))]
    one_refused = await asyncio.gather(batcher.call(1), batcher.call(-1), return_exceptions=True)
    assert one_refused[0] == 2 and isinstance(one_refused[1], ValueError)


async def test_a_caller_cancelled_while_queued_is_not_sent():
    peer = Peer(hold=True)
    batcher = Coalescer(peer.send, max_in_flight=1)
    first = asyncio.create_task(batcher.call(1))
    await settle()
    gone = asyncio.create_task(batcher.call(2))
    kept = asyncio.create_task(batcher.call(3))
    await settle()
    gone.cancel()
    await settle()
    peer.gate.set()
    assert await first == 2 and await kept == 6
    assert peer.batches == [[1], [3]]


@pytest.mark.parametrize("failure", [RuntimeError("down"), asyncio.CancelledError()])
async def test_a_failed_or_cancelled_batch_gives_each_caller_its_own_unavailable(failure):
    calls = []

    async def send(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            await asyncio.sleep(0)
            raise failure
        return items

    batcher = Coalescer(send, max_batch=2, max_in_flight=1)
    results = await asyncio.gather(*(batcher.call(i) for i in range(4)), return_exceptions=True)
    if isinstance(failure, asyncio.CancelledError):  # the cancel takes the queued ones down too
        assert all(isinstance(r, Unavailable) for r in results)
    else:  # the next batch is sent as usual
        assert all(isinstance(r, Unavailable) for r in results[:2]) and results[2:] == [2, 3]
    failed = [r for r in results if isinstance(r, Unavailable)]
    assert len({id(r) for r in failed}) == len(failed), "one exception instance per caller"
    assert all(r.cause is failure for r in failed)
    await batcher.flush()  # does not raise the batch task's cancel
    assert await batcher.call(5) == 5, "still usable afterwards"


async def test_flush_raises_a_cancel_of_its_own_caller():
    peer = Peer(hold=True)
    batcher = Coalescer(peer.send)
    waiting = asyncio.create_task(batcher.call(1))
    flushing = asyncio.create_task(batcher.flush())
    await settle()
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    peer.gate.set()
    assert await waiting == 2, "the batch itself was not cancelled"


async def test_the_wrong_number_of_answers_fails_the_batch():
    async def send(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = Coalescer(send)
    results = await asyncio.gather(batcher.call(1), batcher.call(2), return_exceptions=True)
    assert all(isinstance(r, Unavailable) and "1 answers to 2 calls" in str(r) for r in results)


async def test_a_posted_failure_is_logged_without_its_posters_context(lines):
    peer = Peer()
    batcher = Coalescer(peer.send, name="mark")
    with structlog.contextvars.bound_contextvars(job_id="ab" * 16):
        batcher.post(-3)
        batcher.post(4)
    await batcher.flush()
    assert peer.batches == [[-3, 4]]
    failures = [line for line in lines() if line.get("event") == "mark failed"]
    assert len(failures) == 1 and "odd -3" in failures[0]["error"]
    assert "job_id" not in failures[0], "the batch is nobody's in particular"


async def test_flush_returns_once_everything_added_was_answered():
    peer = Peer(hold=True)
    batcher = Coalescer(peer.send, max_batch=1, max_in_flight=1)
    for i in range(3):
        batcher.post(i)
    flushing = asyncio.create_task(batcher.flush())
    await settle()
    assert not flushing.done()
    peer.gate.set()
    await flushing
    assert peer.batches == [[0], [1], [2]]


async def test_a_batch_stays_within_its_bytes():
    peer = Peer()
    batcher = Coalescer(peer.send, size=lambda item: 400, max_bytes=1000, max_in_flight=1)
    assert await asyncio.gather(*(batcher.call(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert peer.batches == [[0, 1], [2, 3], [4]]


async def test_a_few_batches_go_at_once_and_the_rest_wait():
    peer = Peer(hold=True)
    batcher = Coalescer(peer.send, max_in_flight=2, overlap_after=0)
    tasks = []
    for i in range(4):  # one call per loop turn: each would start a batch of its own if there were room
        tasks.append(asyncio.create_task(batcher.call(i)))
        await settle()
    assert peer.batches == [[0], [1]] and peer.in_flight == 2
    peer.gate.set()
    assert await asyncio.gather(*tasks) == [0, 2, 4, 6]
    assert peer.batches == [[0], [1], [2, 3]] and peer.most_in_flight == 2


async def test_what_waits_too_long_in_the_queue_fails_unavailable():
    peer = Peer(hold=True)
    batcher = Coalescer(peer.send, max_in_flight=1, max_wait=0.1)
    stuck = asyncio.create_task(batcher.call(1))
    await settle()
    with pytest.raises(Unavailable, match="waited over 0.1 s"):
        await asyncio.wait_for(batcher.call(2), 10)
    peer.gate.set()
    assert await stuck == 2
    await batcher.flush()
    assert peer.batches == [[1]], "the expired call was never sent"


async def test_a_second_batch_waits_while_the_first_is_quick():
    peer = Peer(hold=True)
    batcher = Coalescer(peer.send, max_in_flight=2, overlap_after=3600)
    first = asyncio.create_task(batcher.call(1))
    await settle()
    later = [asyncio.create_task(batcher.call(i)) for i in (2, 3)]
    await settle()
    assert peer.batches == [[1]], "grouped behind the first rather than sent alone"
    peer.gate.set()
    assert await first == 2 and await asyncio.gather(*later) == [4, 6]
    assert peer.batches == [[1], [2, 3]]
