from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
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
    admin_readonly_token: SecretStr | None = Field(
        None, description="sees the dashboard and the operator API, can change nothing (MINTPIPE_ADMIN_READONLY_TOKEN)")
    admin_secure_cookie: bool = Field(False, description="mark the dashboard's session cookie Secure (HTTPS only)")
    # The pinning plan's monthly budget, shown on the dashboard; read from the pinner's variable so one serves all.
    monthly_pins: int | None = Field(None, ge=0, validation_alias=AliasChoices("STATUS_MONTHLY_PINS",
                                                                              "PINNER_MONTHLY_PINS"))
    overview_cache_seconds: float = Field(2.0, ge=0, le=60,
                                          description="open dashboards share an overview this fresh (0: none)")
    ip_rate_per_minute: float = Field(120, gt=0, description="submissions one client IP may make per minute")
    ip_burst: int = Field(30, ge=1)
    trust_forwarded_for: bool = Field(False, description="take the client IP from X-Forwarded-For (behind a proxy)")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024)

    @property
    def database(self) -> Path:
        return self.db_path or self.data_dir / "jobs.sqlite3"
