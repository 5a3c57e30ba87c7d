from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from mintpipe.config import ServiceSettings


class PinnerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PINNER_")

    health_host: str = "127.0.0.1"
    health_port: int = Field(50071, ge=0, le=65535, description="gRPC health/reflection port of this replica")
    metrics_port: int = Field(0, ge=0, le=65535,
                              description="Prometheus /metrics port (0: a free one, logged at start)")
    prefetch: int = Field(2, ge=1, le=64)
    backend: Literal["local", "pinata"] = Field("local", description="local = the content-addressed store")
    pinata_jwt: SecretStr | None = Field(None, validation_alias=AliasChoices("PINNER_PINATA_JWT", "PINATA_JWT"))
    pinata_api: Literal["v3", "legacy"] = "v3"
    pinata_api_url: str = "https://api.pinata.cloud"
    pinata_uploads_url: str = "https://uploads.pinata.cloud"
    # Shared by every replica (through the pin ledger). Pinata documents 180 requests a minute; the window
    # has a second of slack because the server counts a request when it arrives, a little after we send it.
    rate_limit: int = Field(180, ge=1, le=100_000, description="backend requests per window, all replicas")
    rate_window_seconds: float = Field(61.0, gt=0, le=3600)
    monthly_pins: int | None = Field(None, ge=0, description="pins the backend plan allows per month")

    @model_validator(mode="after")
    def _pinata_needs_a_jwt(self) -> PinnerSettings:
        if self.backend == "pinata" and not (self.pinata_jwt and self.pinata_jwt.get_secret_value()):
            raise ValueError("PINNER_PINATA_JWT (or PINATA_JWT) is required when PINNER_BACKEND=pinata")
        return self
