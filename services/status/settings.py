from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
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
    # Previews: a name resolving to every renderer replica, balanced round robin (status.bridge.preview).
    renderer_target: str = Field("127.0.0.1:50061", min_length=1,
                                 description="gRPC target of the renderers' RenderPreview, e.g. dns:///renderer:50061")
    preview_ip_rate_per_minute: float = Field(600, gt=0, description="previews one client IP may ask for a minute")
    preview_ip_burst: int = Field(60, ge=1)
    web_dir: Path | None = Field(None, description="built web apps (web/dist); default: beside the services")
    ipfs_gateway_url: str | None = Field(None, pattern=r"^https?://", description="an IPFS gateway /ipfs/{cid} "
                                         "redirects to for content not stored here (pinning to Pinata keeps no "
                                         "local copy), e.g. your Pinata gateway")
    # The chain: the minter (services/minter) holds the keys and speaks to the node; status asks it over gRPC.
    minter_target: str | None = Field(None, description="gRPC target of the minter(s), e.g. dns:///minter:50081 "
                                      "(unset: no chain; jobs end at pinned)")
    relay_ip_rate_per_minute: float = Field(6, gt=0, description="relay requests one client IP may make a minute")
    relay_ip_burst: int = Field(5, ge=1)
    report_ip_rate_per_minute: float = Field(30, gt=0, description="reported mint transactions one client IP "
                                             "may make a minute (each costs the minter RPC calls)")
    report_ip_burst: int = Field(10, ge=1)
    relay_wait_seconds: float = Field(10, ge=0, le=60, description="how long POST .../mint {relay} waits for the "
                                      "relayer's answer before answering `queued`")
    claim_secret: SecretStr | None = Field(None, description="key of the claim tokens (unset: made once and kept "
                                           "in the job store, shared by every replica)")

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

    # Several replicas (issue 11, status.replicas): only with MINTPIPE_DATABASE_URL set to PostgreSQL.
    replica_name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[^|]+$",
                                     description="this replica's name in /healthz (default: MINTPIPE_REPLICA, "
                                     "else host:pid)")
    watch_poll_seconds: float = Field(2.0, gt=0, le=3600, description="watchers re-read their job this often, "
                                      "in case a change's announcement was missed")
    leader_retry_seconds: float = Field(1.0, gt=0, le=60, description="a follower tries to become the leader "
                                        "this often: the takeover time when the leader dies")

    @property
    def database(self) -> Path:
        return self.db_path or self.data_dir / "jobs.sqlite3"
