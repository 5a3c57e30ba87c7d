"""Typed settings from the environment: a leaf (it imports no mintpipe module but mintpipe.runtime.log).

Settings parse; mintpipe.bootstrap builds what they name (the database, the artifact and IPFS stores).

Every service has its own prefix (GATEWAY_, RENDERER_, PINNER_, STATUS_). Settings every service
shares (broker URL, data folder, log level) may also be given once with the MINTPIPE_ prefix; the
service's own prefix wins, so one replica can be pointed elsewhere without touching the others.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

# the one URL redactor (password, API keys in path/query); log imports no config
from mintpipe.runtime.log import redact_url

SHARED_PREFIX = "MINTPIPE_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9._/-]*$")


def log_level_name(value: str) -> str:
    """`warning`, ` Warning ` and `WARNING` all name WARNING; anything else is refused."""
    name = value.strip().upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} (any case), not {value!r}")
    return name


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=SHARED_PREFIX, extra="ignore", validate_default=True)

    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ URL; its path is the vhost")
    broker_prefix: str = Field("mintpipe", pattern=r"^[a-zA-Z0-9_.-]{1,64}$",
                               description="prefix of every queue and exchange")
    data_dir: Path = Field(Path("data"), description="root of the artifact store, job store and local IPFS store")
    artifacts_url: str | None = Field(None, description="s3://bucket/prefix: artifacts, cancel markers and the "
                                      "local IPFS store in that S3-compatible object store (endpoint and "
                                      "credentials from the AWS_* variables); unset: folders under data_dir")
    log_level: Literal[LOG_LEVELS] = "INFO"
    grace_seconds: float = Field(20.0, gt=0, le=600, description="SIGTERM drain budget")
    database_url: str | None = Field(
        None, description="postgresql://user:password@host:port/db: the job store, the pin ledger and every other "
                          "table live in PostgreSQL (shared by replicas on several hosts); unset: SQLite files under "
                          "the data folder")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return log_level_name(value) if isinstance(value, str) else value

    @field_validator("artifacts_url")
    @classmethod
    def _artifacts_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parse_artifacts_url(value)
        return value

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("amqp", "amqps"):
            raise ValueError("must be an amqp:// or amqps:// URL")
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _postgres_dsn(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip() or None
            if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
                raise ValueError("must be a postgresql:// URL (or unset for SQLite files under the data folder)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = EnvSettingsSource(settings_cls, env_prefix=SHARED_PREFIX, case_sensitive=False)
        return (init_settings, env_settings, shared, dotenv_settings, file_secret_settings)

    @property
    def amqp_url_redacted(self) -> str:
        return redact_url(self.amqp_url)

    @property
    def database_redacted(self) -> str:
        return redact_url(self.database_url) if self.database_url else "sqlite"


class ObjectStoreConfigError(Exception):
    """The object store cannot be used as configured; the message names the variable to fix."""


def parse_artifacts_url(value: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix/"); a ValueError saying what is wrong otherwise."""
    parts = urlsplit(value)
    if parts.scheme != "s3":
        raise ValueError("must be s3://bucket/prefix (or unset for the local folder)")
    if parts.username or parts.password or parts.port or parts.query or parts.fragment:
        raise ValueError("s3://bucket/prefix only: credentials go in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if not _BUCKET.match(parts.netloc or ""):
        raise ValueError("the bucket name must be 3-63 lowercase letters, digits, dots or hyphens")
    prefix = parts.path.strip("/")
    if not _PREFIX.match(prefix) or "//" in prefix or ".." in prefix.split("/"):
        raise ValueError("the prefix may hold letters, digits, '.', '_', '-' and single '/' separators")
    return parts.netloc, f"{prefix}/" if prefix else ""


S = TypeVar("S", bound=ServiceSettings)


def load_settings(cls: type[S]) -> S:
    """Build the settings or exit at once with a message naming each bad variable (never its value)."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"{cls.__name__}: invalid configuration"]
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper()
            if name:
                lines.append(f"  {prefix}{name} (or {SHARED_PREFIX}{name}): {err['msg']}")
            else:
                lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
