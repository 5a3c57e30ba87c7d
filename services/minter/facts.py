"""What the minter learned, as JobEvents on the events exchange (JobEvent.mint): status applies them like every
other stage's events. Each publish waits for the broker's confirm; a duplicate changes nothing in status."""

from __future__ import annotations

import uuid

from google.protobuf.timestamp_pb2 import Timestamp

from mintpipe.core.stages import replica_id
from mintpipe.messaging.broker import Broker
from mintpipe.v1 import broker_pb2, jobs_pb2

Kind = broker_pb2.MintFact


class FactPublisher:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def publish(self, job_id: str, stage: int, fact: broker_pb2.MintFact, error: str = "") -> None:
        occurred = Timestamp()
        occurred.GetCurrentTime()
        event = broker_pb2.JobEvent(event_id=uuid.uuid4().hex, job_id=job_id, stage=stage,
                                    progress=100, error=error, occurred_at=occurred, source="minter",
                                    replica=replica_id(), mint=fact)
        key = "job.minted" if stage == jobs_pb2.STAGE_MINTED else "job.mint"
        await self.broker.publish(self.broker.topology.events_exchange, key, event, message_id=event.event_id)

    async def minted(self, job_id: str, token_id: int, wallet: str, tx_hash: str, block: int,
                     block_hash: str) -> None:
        await self.publish(job_id, jobs_pb2.STAGE_MINTED, broker_pb2.MintFact(
            kind=Kind.KIND_MINTED, token_id=str(token_id), wallet=wallet, tx_hash=tx_hash, block=block,
            block_hash=block_hash))

    async def undone(self, job_id: str, token_id: int, tx_hash: str, block: int) -> None:
        await self.publish(job_id, jobs_pb2.STAGE_PINNED, broker_pb2.MintFact(
            kind=Kind.KIND_UNDONE, token_id=str(token_id), tx_hash=tx_hash, block=block))

    async def relay_sent(self, job_id: str, tx_hash: str, wallet: str) -> None:
        await self.publish(job_id, jobs_pb2.STAGE_PINNED, broker_pb2.MintFact(
            kind=Kind.KIND_RELAY_SENT, tx_hash=tx_hash, wallet=wallet))

    async def relay_failed(self, job_id: str, http_status: int, code: str, message: str, field: str | None) -> None:
        await self.publish(job_id, jobs_pb2.STAGE_PINNED, broker_pb2.MintFact(
            kind=Kind.KIND_RELAY_FAILED, http_status=http_status, code=code, field=field or ""), error=message)
