from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mintpipe.config import ServiceSettings
from renderer.consumer import DEFAULT_DEADLINE


class RendererSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RENDERER_")

    health_host: str = "127.0.0.1"
    health_port: int = Field(50061, ge=0, le=65535, description="gRPC health/reflection port of this replica")
    metrics_port: int = Field(0, ge=0, le=65535,
                              description="Prometheus /metrics port (0: a free one, logged at start)")
    # One render at a time per replica: renders are CPU-bound, so replicas (not prefetch) add throughput,
    # and a job never waits behind another in a busy replica's buffer.
    prefetch: int = Field(1, ge=1, le=16)
    # Must stay below the broker's consumer timeout (RabbitMQ's consumer_timeout, 1800 s by default), or the
    # broker would take the job back mid-render.
    deadline_seconds: float = Field(DEFAULT_DEADLINE, gt=0, lt=1800,
                                    description="a render running longer is stopped and retried later")
