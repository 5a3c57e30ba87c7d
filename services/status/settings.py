from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from mintpipe.config import ServiceSettings


class StatusSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STATUS_")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50052, ge=0, le=65535)
    # The bridge's address is shared with the launcher and the front end, hence MINTPIPE_HTTP_PORT also works.
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    gateway_target: str = Field("127.0.0.1:50051", description="host:port of the gateway's gRPC server")
    db_path: Path | None = Field(None, description="SQLite file; default <data_dir>/jobs.sqlite3")
    prefetch: int = Field(64, ge=1, le=1000)
    orphan_after_seconds: float = Field(60, gt=0, description="republish a reserved, unpublished job after this")
    sweep_interval_seconds: float = Field(15, gt=0)
    # Retention. Keys are promised for at least 24 h whatever happens to their jobs (SPEC.md).
    job_retention_days: float = Field(30, gt=0, description="finished jobs are deleted this long after their end")
    idempotency_key_hours: float = Field(72, ge=24, description="idempotency keys are kept this long (24 h at least)")
    retention_interval_seconds: float = Field(3600, gt=0)
    admin_token: SecretStr | None = Field(None, description="bearer token of /v1/admin (MINTPIPE_ADMIN_TOKEN)")
    ip_rate_per_minute: float = Field(120, gt=0, description="submissions one client IP may make per minute")
    ip_burst: int = Field(30, ge=1)
    trust_forwarded_for: bool = Field(False, description="take the client IP from X-Forwarded-For (behind a proxy)")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024)

    # Disk (issue 15): rendered files leave once pinned, or after a failed job's replay window; the bridge says
    # `degraded` when the data volume is nearly full and refuses new jobs (503) before it is full.
    artifact_keep_pinned_seconds: float = Field(600, ge=0, description="a pinned job's rendered files are "
                                                "deleted this long after it was pinned")
    artifact_keep_failed_hours: float = Field(72, gt=0, description="a failed job's rendered files (and cancel "
                                              "markers) are kept this long, for a replay")
    artifact_sweep_interval_seconds: float = Field(300, gt=0)
    disk_degraded_free_percent: float = Field(10, ge=0, le=100, description="/healthz degraded below this free")
    disk_refuse_free_percent: float = Field(5, ge=0, le=100, description="new jobs refused (503) below this free")

    @model_validator(mode="after")
    def _refuse_before_degraded(self) -> StatusSettings:
        if self.disk_refuse_free_percent > self.disk_degraded_free_percent:
            raise ValueError("STATUS_DISK_REFUSE_FREE_PERCENT must not exceed STATUS_DISK_DEGRADED_FREE_PERCENT")
        return self

    @property
    def database(self) -> Path:
        return self.db_path or self.data_dir / "jobs.sqlite3"
