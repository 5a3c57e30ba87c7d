"""Orphan sweeper: a job reserved by the gateway whose render job was never confirmed by the broker (the
gateway crashed, or the broker went away between reserve and publish, and the client never retried) is
published again from what the store holds, so no accepted job is left `queued` forever."""

from __future__ import annotations

import asyncio
import time

from google.protobuf.timestamp_pb2 import Timestamp

from mintpipe.messaging.broker import Broker, BrokerUnavailable
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import broker_pb2
from status.jobs.store import JobStore
from status.settings import StatusSettings

log = get_logger("status.sweeper")


class OrphanSweeper:
    def __init__(self, store: JobStore, broker: Broker, orphan_after: float, interval: float) -> None:
        self.store = store
        self.broker = broker
        self.orphan_after = orphan_after
        self.interval = interval
        self.republished = 0

    async def sweep_once(self) -> int:
        count = 0
        for record in await self.store.unpublished_before(time.time() - self.orphan_after):
            submitted = Timestamp()
            submitted.FromNanoseconds(int(record.created_at * 1e9))
            render = broker_pb2.RenderJob(job_id=record.job_id, scene=record.scene,
                                          settings_json=record.settings_json, wallet=record.wallet,
                                          submitted_at=submitted)
            try:
                await self.broker.publish(self.broker.topology.jobs_exchange, "render", render,
                                          message_id=record.job_id)
            except BrokerUnavailable as exc:
                log.warning("sweeper cannot publish now", error=str(exc))
                break
            await self.store.mark_published(record.job_id)
            log.warning("republished orphan job", job_id=record.job_id)
            count += 1
        self.republished += count
        return count

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep_once()
            except Exception as exc:  # the sweeper must outlive a bad moment of the store or broker
                log.error("sweep failed", error=str(exc))


class RetentionSweeper:
    """Deletes finished jobs after their retention and idempotency keys after theirs, independently."""

    def __init__(self, store: JobStore, job_retention: float, key_retention: float, interval: float) -> None:
        self.store = store
        self.job_retention = job_retention
        self.key_retention = key_retention
        self.interval = interval

    async def prune_once(self, now: float | None = None) -> tuple[int, int]:
        now = time.time() if now is None else now
        jobs, keys = await self.store.prune(now - self.job_retention, now - self.key_retention)
        if jobs or keys:
            log.info("retention", jobs_deleted=jobs, keys_deleted=keys)
        return jobs, keys

    async def run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception as exc:  # a busy or briefly unavailable store: try again next round
                log.error("retention failed", error=str(exc))
            await asyncio.sleep(self.interval)


def retention_sweeper(store: JobStore, settings: StatusSettings) -> RetentionSweeper:
    """The status service's retention as its settings ask (the same factory the tests use)."""
    return RetentionSweeper(store, settings.job_retention_days * 86400, settings.idempotency_key_hours * 3600,
                            settings.retention_interval_seconds)
