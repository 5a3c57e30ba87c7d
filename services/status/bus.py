"""In-process fan-out of job changes to watchers (gRPC Watch and SSE)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

from mintpipe.events import TERMINAL_STAGES
from status.records import JobRecord

# With several status replicas a change may be applied by another process; watchers then re-read the
# store at this interval, so they never hang on a change they were not told about.
POLL_SECONDS = 2.0


class JobBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[JobRecord]]] = defaultdict(set)

    def publish(self, record: JobRecord) -> None:
        for queue in list(self._subscribers.get(record.job_id, ())):
            queue.put_nowait(record)

    async def watch(self, job_id: str, load: Callable[[str], Awaitable[JobRecord | None]],
                    terminal: frozenset[int] = TERMINAL_STAGES) -> AsyncIterator[JobRecord]:
        """The job now, then each change, ending after a terminal stage. Nothing if the job is unknown."""
        queue: asyncio.Queue[JobRecord] = asyncio.Queue()
        self._subscribers[job_id].add(queue)  # subscribe before reading, so no change slips between
        try:
            current = await load(job_id)
            if current is None:
                return
            yield current
            while current.stage not in terminal:
                try:
                    candidate = await asyncio.wait_for(queue.get(), timeout=POLL_SECONDS)
                except TimeoutError:
                    candidate = await load(job_id)
                if candidate is None or candidate.state == current.state:
                    continue
                current = candidate
                yield current
        finally:
            subs = self._subscribers.get(job_id)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    self._subscribers.pop(job_id, None)
