"""The S3-compatible object store behind `MINTPIPE_ARTIFACTS_URL=s3://bucket/prefix`: settings, client, counters.

boto3 (botocore) is the client: the reference SDK, kept by AWS, speaking every S3-compatible server (AWS S3,
MinIO, SeaweedFS). Its transfer manager does multipart uploads from a file in bounded parts (no clip is ever held
whole in memory), its streaming bodies read a download in chunks, and its event hooks count every request and
byte, which the benchmarks and the round-trip figures use. The stores are synchronous, like the local folder they
stand in for; the services already call them through `asyncio.to_thread`.

Endpoint and credentials come from the usual AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION or AWS_DEFAULT_REGION). They are checked at start with one request
(HeadBucket): a wrong endpoint, key, secret or bucket stops the service with a message naming the variable.
The secret key is a SecretStr: it is never logged, printed or put in a message.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mintpipe.config import ObjectStoreConfigError, parse_artifacts_url  # pure; settings check the URL

# S3's smallest part is 5 MiB (all but the last). A default job's GIF is ~9.3 MB and its MP4 under 1 MB: the GIF
# goes up in 2 parts, the rest in one PUT each. One part in flight at a time (use_threads=False): the upload reads
# 5 MiB, sends it, reads the next; bench/artifacts_s3.py measures what that adds to a renderer's peak memory.
PART_SIZE = 5 << 20
TRANSFER = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, use_threads=False)
READ_CHUNK = 1 << 20


class AwsSettings(BaseSettings):
    """The AWS variables, read under their usual names (no service prefix)."""

    model_config = SettingsConfigDict(extra="ignore")

    endpoint_url: str | None = Field(None, pattern=r"^https?://[^/\s]+", validation_alias="AWS_ENDPOINT_URL")
    access_key_id: str | None = Field(None, min_length=1, validation_alias="AWS_ACCESS_KEY_ID")
    secret_access_key: SecretStr | None = Field(None, validation_alias="AWS_SECRET_ACCESS_KEY")
    region: str = Field("us-east-1", pattern=r"^[a-z0-9-]{1,32}$",
                        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))


@dataclass
class Traffic:
    """Requests and bytes sent to and read from the object store by this process (all clients)."""

    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.by_operation: dict[str, int] = {}

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {"requests": self.requests, "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
                    "by_operation": dict(sorted(self.by_operation.items()))}

    def _on_call(self, model=None, **_kw) -> None:
        name = getattr(model, "name", "?")
        with self._lock:
            self.by_operation[name] = self.by_operation.get(name, 0) + 1

    def _on_send(self, request, **_kw) -> None:  # every HTTP request, retries included
        body = request.body
        size = len(body) if isinstance(body, bytes | bytearray) else int(request.headers.get("Content-Length") or 0)
        with self._lock:
            self.requests += 1
            self.bytes_sent += size

    def _on_response(self, http_response=None, model=None, **_kw) -> None:
        # A HEAD's Content-Length is the object's size, not bytes on the wire.
        if http_response is None or getattr(model, "http", {}).get("method") == "HEAD":
            return
        length = http_response.headers.get("Content-Length")
        with self._lock:
            self.bytes_received += int(length or 0)


TRAFFIC = Traffic()


@dataclass(frozen=True)
class Bucket:
    """A client on one bucket and key prefix; every key the stores use goes through `key()`."""

    client: object
    name: str
    prefix: str

    def key(self, relative: str) -> str:
        return self.prefix + relative


def open_bucket(url: str, aws: AwsSettings | None = None, check: bool = True) -> Bucket:
    """The bucket `url` names, reached with the AWS variables; with `check`, one HeadBucket proves the endpoint,
    the credentials and the bucket, or raises ObjectStoreConfigError naming the variable to fix."""
    try:
        name, prefix = parse_artifacts_url(url)
    except ValueError as exc:
        raise ObjectStoreConfigError(f"MINTPIPE_ARTIFACTS_URL: {exc}") from None
    if aws is None:
        try:
            aws = AwsSettings()
        except ValidationError as exc:
            names = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors()}))
            raise ObjectStoreConfigError(f"{names}: invalid value (see docs/artifacts.md)") from None
    if not aws.access_key_id or aws.secret_access_key is None:
        raise ObjectStoreConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set when "
                                     "MINTPIPE_ARTIFACTS_URL is an s3:// URL")
    config = Config(
        region_name=aws.region, signature_version="s3v4",
        # Path-style addressing: S3-compatible servers (SeaweedFS, MinIO) rarely have per-bucket DNS names.
        s3={"addressing_style": "path" if aws.endpoint_url else "auto"},
        retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=5, read_timeout=30,
        # Checksums only where S3 requires them: not every S3-compatible server accepts the newer trailing
        # CRC headers, and the stores check sha256 themselves.
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
        max_pool_connections=16)
    client = boto3.session.Session().client(
        "s3", endpoint_url=aws.endpoint_url, aws_access_key_id=aws.access_key_id,
        aws_secret_access_key=aws.secret_access_key.get_secret_value(), config=config)
    client.meta.events.register("before-call.s3", TRAFFIC._on_call)
    client.meta.events.register("before-send.s3", TRAFFIC._on_send)
    client.meta.events.register("after-call.s3", TRAFFIC._on_response)
    bucket = Bucket(client, name, prefix)
    if check:
        check_bucket(bucket)
    return bucket


def check_bucket(bucket: Bucket) -> None:
    try:
        bucket.client.head_bucket(Bucket=bucket.name)
    except botocore.exceptions.EndpointConnectionError:
        raise ObjectStoreConfigError("AWS_ENDPOINT_URL: cannot connect to the object store") from None
    except botocore.exceptions.ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = exc.response.get("Error", {}).get("Code", "")
        if status == 404 or code in ("NoSuchBucket", "404"):
            raise ObjectStoreConfigError(f"MINTPIPE_ARTIFACTS_URL: bucket {bucket.name!r} does not exist") from None
        if status in (401, 403):
            raise ObjectStoreConfigError("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: the object store refused the "
                                         f"credentials for bucket {bucket.name!r} ({status} {code})") from None
        raise ObjectStoreConfigError(f"MINTPIPE_ARTIFACTS_URL: the object store answered {status} {code}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise ObjectStoreConfigError(f"AWS_ENDPOINT_URL: the object store cannot be reached "
                                     f"({type(exc).__name__})") from None


# Local files that are verified copies of an object (path -> bucket, key, ETag), while they exist: the local IPFS
# store on the same bucket then copies the object server-side instead of uploading the file again (the pinner's
# GIF: 8.5 MB less sent per job). The ETag pins the copy to the exact object that was downloaded and hashed.
COPIES: dict[str, tuple[str, str, str]] = {}

_HEALTHY_FOR = 5.0  # health probes run every second; one HeadBucket per 5 s and process is plenty
_last_healthy: dict[str, float] = {}


def bucket_healthy(bucket: Bucket) -> bool:
    """For health checks: the bucket answered within the last few seconds (one HeadBucket per 5 s at most)."""
    now = time.monotonic()
    if now - _last_healthy.get(bucket.name, -_HEALTHY_FOR) < _HEALTHY_FOR:
        return True
    try:
        check_bucket(bucket)
    except ObjectStoreConfigError:
        return False
    _last_healthy[bucket.name] = now
    return True


def is_missing(exc: Exception) -> bool:
    """A ClientError that means 'no such key'."""
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    return (exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
            or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404)


def list_keys(bucket: Bucket, relative_prefix: str):
    """(key relative to the bucket's prefix, size, last-modified epoch seconds) of every object under it."""
    pages = bucket.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket.name, Prefix=bucket.key(relative_prefix))
    for page in pages:
        for obj in page.get("Contents", ()):
            yield obj["Key"][len(bucket.prefix):], obj["Size"], obj["LastModified"].timestamp()


def delete_keys(bucket: Bucket, relative_keys: list[str]) -> None:
    for start in range(0, len(relative_keys), 1000):  # DeleteObjects takes at most 1000 keys
        batch = [{"Key": bucket.key(k)} for k in relative_keys[start:start + 1000]]
        bucket.client.delete_objects(Bucket=bucket.name, Delete={"Objects": batch, "Quiet": True})
