"""The progress events every stage publishes (the event envelope); the stages themselves are mintpipe.core.stages."""

from __future__ import annotations

import uuid

from google.protobuf.timestamp_pb2 import Timestamp

from mintpipe.core.stages import replica_id, stage_name
from mintpipe.messaging.broker import Broker
from mintpipe.v1 import broker_pb2, jobs_pb2


class EventPublisher:
    """Publishes JobEvents to the events exchange, each confirmed by the broker before returning."""

    def __init__(self, broker: Broker, source: str) -> None:
        self.broker = broker
        self.source = source

    async def emit(
        self,
        job_id: str,
        stage: int,
        progress: int,
        *,
        error: str = "",
        assets: jobs_pb2.JobAssets | None = None,
        token_uri: str = "",
        attempt: int = 0,
        retry_in_s: int = 0,
    ) -> None:
        occurred = Timestamp()
        occurred.GetCurrentTime()
        event = broker_pb2.JobEvent(
            event_id=uuid.uuid4().hex,
            job_id=job_id,
            stage=stage,
            progress=progress,
            error=error,
            token_uri=token_uri,
            occurred_at=occurred,
            source=self.source,
            replica=replica_id(),
            attempt=attempt,
            retry_in_s=retry_in_s,
        )
        if assets is not None:
            event.assets.CopyFrom(assets)
        await self.broker.publish(
            self.broker.topology.events_exchange, f"job.{stage_name(stage)}", event, message_id=event.event_id
        )
