"""A stored job, and its two faces: the protobuf Job (gRPC) and the JSON document (HTTP)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from mintpipe.core.stages import stage_name
from mintpipe.v1 import jobs_pb2
from status.jobs.transitions import ASSET_KINDS, JobState


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    wallet: str
    scene: str
    settings_json: str
    created_at: float
    updated_at: float
    state: JobState = field(default_factory=JobState)
    published: bool = False

    @property
    def stage(self) -> int:
        return self.state.stage

    def to_proto(self) -> jobs_pb2.Job:
        created, updated = Timestamp(), Timestamp()
        created.FromNanoseconds(int(self.created_at * 1e9))
        updated.FromNanoseconds(int(self.updated_at * 1e9))
        return jobs_pb2.Job(
            job_id=self.job_id,
            stage=self.state.stage,
            progress=self.state.progress,
            error=self.state.error,
            wallet=self.wallet,
            scene=self.scene,
            settings_json=self.settings_json,
            assets=jobs_pb2.JobAssets(**{k: self.state.assets.get(k, "") for k in ASSET_KINDS}),
            token_uri=self.state.token_uri,
            created_at=created,
            updated_at=updated,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "stage": stage_name(self.state.stage),
            "progress": self.state.progress,
            "error": self.state.error or None,
            "wallet": self.wallet,
            "scene": self.scene,
            "settings": json.loads(self.settings_json) if self.settings_json else {},
            "assets": {k: _ipfs_uri(self.state.assets.get(k, "")) for k in ASSET_KINDS},
            "token_uri": self.state.token_uri or None,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def _ipfs_uri(cid: str) -> str | None:
    return f"ipfs://{cid}" if cid else None


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
