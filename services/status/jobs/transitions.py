"""How an event changes a job: the rules that make applying events idempotent and order-proof.

- Stages only move forward (queued < rendering < rendered < pinning < pinned < minted).
- progress never decreases; pinned and minted are 100.
- failed and minted absorb everything after them; a stale `failed` never overrides a job that pinned.
- Asset ids and the token URI, once known, are never replaced (they are content ids: a redelivery
  computes the same ones).
So a duplicate, or an event overtaken by a later one, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mintpipe.v1 import broker_pb2, jobs_pb2

_RANK = {
    jobs_pb2.STAGE_QUEUED: 1,
    jobs_pb2.STAGE_RENDERING: 2,
    jobs_pb2.STAGE_RENDERED: 3,
    jobs_pb2.STAGE_PINNING: 4,
    jobs_pb2.STAGE_PINNED: 5,
    jobs_pb2.STAGE_MINTED: 6,
}
ASSET_KINDS = ("image", "animation", "preview", "metadata")


@dataclass(frozen=True)
class JobState:
    stage: int = jobs_pb2.STAGE_QUEUED
    progress: int = 0
    error: str = ""
    assets: dict[str, str] = field(default_factory=dict)
    token_uri: str = ""


def apply_event(current: JobState, event: broker_pb2.JobEvent) -> JobState | None:
    """The job after `event`, or None when the event changes nothing."""
    if current.stage in (jobs_pb2.STAGE_FAILED, jobs_pb2.STAGE_MINTED):
        return None
    if event.stage == jobs_pb2.STAGE_FAILED:
        if current.stage == jobs_pb2.STAGE_PINNED:
            return None
        return replace(current, stage=jobs_pb2.STAGE_FAILED, error=event.error or "failed")
    if event.stage not in _RANK:
        return None

    stage = event.stage if _RANK[event.stage] > _RANK[current.stage] else current.stage
    progress = max(current.progress, min(int(event.progress), 100))
    if stage in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_MINTED):
        progress = 100
    assets = dict(current.assets)
    for kind in ASSET_KINDS:
        value = getattr(event.assets, kind)
        if value and not assets.get(kind):
            assets[kind] = value
    token_uri = current.token_uri or event.token_uri
    updated = replace(current, stage=stage, progress=progress, assets=assets, token_uri=token_uri)
    return None if updated == current else updated
