"""In-process fan-out of job changes to watchers (gRPC Watch and SSE); with several replicas, `relay` also
tells the other replicas (status.replicas.feed), which re-read the job and fan it out to their own watchers."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

from mintpipe.core.stages import TERMINAL_STAGES
from status.jobs.records import JobRecord

# With several status replicas a change may be applied by another process; watchers then re-read the
# store at this interval, so they never hang on a change they were not told about.
POLL_SECONDS = 2.0


class JobBus:
    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self._subscribers: dict[str, set[asyncio.Queue[JobRecord]]] = defaultdict(set)
        # Set by status.replicas.feed when MINTPIPE_DATABASE_URL is PostgreSQL: announces a changed job id to others.
        self.relay: Callable[[str], None] | None = None

    def publish(self, record: JobRecord) -> None:
        """A change this replica made: to its own watchers, and announced to the other replicas."""
        self.publish_local(record)
        if self.relay is not None:
            self.relay(record.job_id)

    def publish_local(self, record: JobRecord) -> None:
        for queue in list(self._subscribers.get(record.job_id, ())):
            queue.put_nowait(record)

    def watching(self, job_id: str) -> bool:
        return bool(self._subscribers.get(job_id))

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
                    candidate = await asyncio.wait_for(queue.get(), timeout=self.poll_seconds)
                except TimeoutError:
                    candidate = await load(job_id)
                # A re-read (poll or another replica's announcement) may return after a newer local change was
                # queued: updated_at never decreases for a job (status.jobs.store), so an older record is skipped.
                if candidate is None or candidate.state == current.state or candidate.updated_at < current.updated_at:
                    continue
                current = candidate
                yield current
        finally:
            subs = self._subscribers.get(job_id)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    self._subscribers.pop(job_id, None)
