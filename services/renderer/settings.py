from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mintpipe.config import ServiceSettings
from renderer.consumer import DEFAULT_DEADLINE


class RendererSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RENDERER_")

    health_host: str = "127.0.0.1"
    health_port: int = Field(50061, ge=0, le=65535,
                             description="gRPC port of this replica: health, reflection and RenderPreview")
    metrics_port: int = Field(0, ge=0, le=65535,
                              description="Prometheus /metrics port (0: a free one, logged at start)")
    # One render at a time per replica: renders are CPU-bound, so replicas (not prefetch) add throughput,
    # and a job never waits behind another in a busy replica's buffer.
    prefetch: int = Field(1, ge=1, le=16)
    # Must stay below the broker's consumer timeout (RabbitMQ's consumer_timeout, 1800 s by default), or the
    # broker would take the job back mid-render.
    deadline_seconds: float = Field(DEFAULT_DEADLINE, gt=0, lt=1800,
                                    description="a render running longer is stopped and retried later")
    # Previews (RenderPreview): ~25 ms each at 256 px, drawn one at a time, so 20 a second keeps a replica's
    # job renders going; cache hits are free and not counted.
    preview_rate: float = Field(20.0, gt=0, le=1000, description="previews a replica draws per second at most")
    preview_burst: int = Field(40, ge=1, le=10000)
    preview_cache_mb: int = Field(32, ge=0, le=4096, description="PNG bytes of previews kept, least recently used")
    # Threads sharing one job's pixels and GIF frames at most (any count gives the same bytes). 2 halves one job's
    # wall time on two idle cores; on a busy machine (1-minute load average at or above the cores) a render uses 1,
    # which costs less CPU a job there (renderer/consumer.py's threads_for_now has the figures).
    render_threads: int = Field(2, ge=1, le=16, description="threads one render uses at most")
