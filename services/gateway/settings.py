from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from mintpipe.config import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50051, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65535,
                              description="Prometheus /metrics port (0: a free one, logged at start)")
    status_target: str = Field("127.0.0.1:50052", description="host:port of the status service's gRPC server")
    wallet_rate_per_minute: float = Field(60, gt=0, description="submissions a wallet may make per minute")
    wallet_burst: int = Field(20, ge=1)
    # The pinning plan's monthly budget; read from the pinner's variable so one setting serves both.
    monthly_pins: int | None = Field(None, ge=0, validation_alias=AliasChoices("GATEWAY_MONTHLY_PINS",
                                                                               "PINNER_MONTHLY_PINS"))
