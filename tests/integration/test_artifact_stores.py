"""The artifact store's contract, run against both engines: the local folder and a real S3 server (SeaweedFS).
Also the local IPFS store's object-store twin, the sweeper on S3, and start-up refusals of a bad configuration."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mintpipe.core.cid import cid_of_bytes
from mintpipe.objects.artifacts import ArtifactCorrupt, ArtifactMissing, ArtifactStore
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.objects.s3 import AwsSettings, ObjectStoreConfigError, open_bucket
from status.jobs.store import JobStore
from status.workers.artifact_sweeper import ArtifactSweeper

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["local", "s3"])
def engine(request, tmp_path):
    """(store, a second store on the same place as another service would open it, how to read a raw object)."""
    if request.param == "local":
        return ArtifactStore(tmp_path / "artifacts"), ArtifactStore(tmp_path / "artifacts")
    from mintpipe.objects.artifacts_s3 import S3ArtifactStore

    seaweed, url = request.getfixturevalue("seaweed"), request.getfixturevalue("s3_url")
    aws = AwsSettings(**seaweed.aws_env())
    # Each "service" has its own scratch folder: nothing is shared but the object store.
    return (S3ArtifactStore(open_bucket(url, aws), tmp_path / "one"),
            S3ArtifactStore(open_bucket(url, aws), tmp_path / "two"))


def put_job(store, job_id: str, files: dict[str, bytes]) -> dict:
    with store.workspace(job_id) as folder:
        listed = []
        for name, data in files.items():
            (folder / name).write_bytes(data)
            listed.append((folder / name, "image/gif", hashlib.sha256(data).hexdigest()))
        store.publish(job_id, listed)
    manifest = {"renderer_version": "t", "artifacts": [
        {"kind": name, "key": store.key_for(job_id, name), "content_type": "image/gif", "size": len(data),
         "sha256": hashlib.sha256(data).hexdigest()} for name, data in files.items()]}
    store.write_manifest(job_id, manifest)
    return manifest


def test_published_files_come_back_byte_for_byte_to_another_service(engine):
    mine, theirs = engine
    job_id = uuid.uuid4().hex
    big = random.Random(3).randbytes(11 << 20)  # over two 5 MiB parts: a multipart upload on S3
    manifest = put_job(mine, job_id, {"image.gif": big, "preview.png": b"png"})
    assert theirs.read_manifest(job_id) == manifest
    assert theirs.check_manifest(manifest) is None
    assert theirs.has_job(job_id) and not theirs.has_job(uuid.uuid4().hex)
    with theirs.verified_copy(f"{job_id}/image.gif", hashlib.sha256(big).hexdigest()) as path:
        assert path.read_bytes() == big


def test_missing_and_changed_files_are_reported_and_never_handed_out(engine):
    mine, theirs = engine
    job_id = uuid.uuid4().hex
    manifest = put_job(mine, job_id, {"image.gif": b"gif bytes", "preview.png": b"png"})
    with pytest.raises(ArtifactCorrupt, match="sha256"), theirs.verified_copy(f"{job_id}/image.gif", "0" * 64):
        pass
    with pytest.raises(ArtifactMissing, match="missing"), theirs.verified_copy(f"{job_id}/other.gif", "0" * 64):
        pass
    with pytest.raises(ValueError, match="escapes"), theirs.verified_copy("../../etc/passwd", "0" * 64):
        pass
    assert theirs.read_manifest(uuid.uuid4().hex) is None
    mine.remove_job(job_id)
    assert "missing" in theirs.check_manifest(manifest)


def test_a_cancel_written_by_one_service_is_seen_by_another_and_swept(engine):
    mine, theirs = engine
    job_id = uuid.uuid4().hex
    assert not theirs.is_cancelled(job_id)
    mine.cancel(job_id)
    assert theirs.is_cancelled(job_id)
    assert job_id in dict(theirs.cancel_markers())
    theirs.remove_cancel_marker(job_id)
    assert not mine.is_cancelled(job_id) and job_id not in dict(mine.cancel_markers())


async def test_the_sweeper_removes_what_nobody_needs_and_reports_its_bytes(engine, tmp_path):
    mine, theirs = engine
    kept, gone = uuid.uuid4().hex, uuid.uuid4().hex
    put_job(mine, gone, {"image.gif": b"x" * 1000})
    put_job(mine, kept, {"image.gif": b"y" * 10})
    listed = dict(theirs.jobs())
    assert abs(listed[gone] - time.time()) < 120  # the age comes from the object's own timestamp
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    try:
        # Unknown jobs go `failed_keep` after their last change: ask as if an hour had passed for one of them.
        sweeper = ArtifactSweeper(store, theirs, pinned_grace=60, failed_keep=600, interval=60)
        assert (await sweeper.sweep_once(now=listed[gone] + 30)).jobs_removed == []
        theirs_now = {gone: listed[gone], kept: listed[kept] + 10_000}
        theirs.jobs = lambda: iter(theirs_now.items())  # the kept job looks young
        result = await sweeper.sweep_once(now=listed[gone] + 3600)
    finally:
        await store.close()
    assert result.jobs_removed == [gone]
    assert result.bytes_freed >= 1000
    assert not mine.has_job(gone) and mine.has_job(kept)


async def test_the_sweeper_aborts_uploads_a_killed_renderer_left_half_done(seaweed, s3_artifacts, tmp_path):
    bucket = s3_artifacts.bucket
    key = s3_artifacts._key(f"{uuid.uuid4().hex}/image.gif")
    started = bucket.client.create_multipart_upload(Bucket=bucket.name, Key=key)
    bucket.client.upload_part(Bucket=bucket.name, Key=key, UploadId=started["UploadId"], PartNumber=1,
                              Body=b"x" * (5 << 20))

    def open_uploads() -> list[str]:
        listed = bucket.client.list_multipart_uploads(Bucket=bucket.name, Prefix=bucket.prefix)
        return [u["UploadId"] for u in listed.get("Uploads", ())]

    assert open_uploads() == [started["UploadId"]]
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    try:
        sweeper = ArtifactSweeper(store, s3_artifacts, pinned_grace=60, failed_keep=600, interval=60)
        assert (await sweeper.sweep_once()).uploads_aborted == 0  # young: may be a live renderer's
        assert (await sweeper.sweep_once(now=time.time() + 3600)).uploads_aborted == 1
    finally:
        await store.close()
    assert open_uploads() == []


# --- the local IPFS store on both engines --------------------------------------------------------------

@pytest.fixture(params=["local", "s3"])
def ipfs(request, tmp_path):
    if request.param == "local":
        return LocalIpfsStore(tmp_path / "ipfs")
    return request.getfixturevalue("s3_ipfs")


def read_back(store, cid: str) -> bytes:
    stored = store.get(cid)
    return stored.path.read_bytes() if stored.path is not None else store.read(cid)


def test_the_ipfs_store_keeps_bytes_type_and_name_under_the_ipfs_cid(ipfs, tmp_path):
    data = random.Random(5).randbytes(700_000)  # three 256 KiB chunks: a dag-pb root
    source = tmp_path / "a.gif"
    source.write_bytes(data)
    first = ipfs.add_file(source, "image/gif", "a gif.gif")
    assert first.cid == cid_of_bytes(data) and not first.already_pinned
    assert ipfs.add_file(source, "image/gif", "a gif.gif").already_pinned
    stored = ipfs.get(first.cid)
    assert (stored.content_type, stored.size, stored.name) == ("image/gif", len(data), "a gif.gif")
    assert read_back(ipfs, first.cid) == data
    meta = ipfs.add_bytes(b'{"name":"x"}', "application/json", "metadata.json")
    assert ipfs.has(meta.cid) and ipfs.get(meta.cid).content_type == "application/json"
    assert ipfs.pins_count() == 2 and {o.cid for o in ipfs.ledger()} == {first.cid, meta.cid}
    assert ipfs.get(cid_of_bytes(b"never added")) is None and ipfs.get("not a cid") is None


# --- a bad configuration is refused at start, naming the variable, never showing the secret ---------------

def test_bad_urls_endpoints_buckets_and_keys_are_refused_naming_the_variable(seaweed, s3_bucket):
    aws = AwsSettings(**seaweed.aws_env())
    for url in ("http://bucket/x", "s3://Bad_Bucket/x", "s3://ok-bucket/../x", "s3://user:pw@bucket/x"):
        with pytest.raises(ObjectStoreConfigError, match="MINTPIPE_ARTIFACTS_URL"):
            open_bucket(url, aws)
    with pytest.raises(ObjectStoreConfigError, match="MINTPIPE_ARTIFACTS_URL: bucket 'no-such-bucket-here'"):
        open_bucket("s3://no-such-bucket-here/x", aws)
    wrong = AwsSettings(**{**seaweed.aws_env(), "AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789"})
    with pytest.raises(ObjectStoreConfigError, match="AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") as refused:
        open_bucket(f"s3://{s3_bucket}/x", wrong)
    assert "wrong-secret" not in str(refused.value)
    closed = AwsSettings(**{**seaweed.aws_env(), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    with pytest.raises(ObjectStoreConfigError, match="AWS_ENDPOINT_URL"):
        open_bucket(f"s3://{s3_bucket}/x", closed)
    no_keys = AwsSettings(AWS_ENDPOINT_URL=seaweed.endpoint)
    with pytest.raises(ObjectStoreConfigError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        open_bucket(f"s3://{s3_bucket}/x", no_keys)


@pytest.mark.parametrize("service", ["renderer", "pinner", "status"])
def test_a_service_with_a_wrong_secret_stops_at_start_and_never_prints_it(service, seaweed, s3_bucket, tmp_path):
    secret = f"never-print-me-{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MINTPIPE_"))}
    env.update(seaweed.env(f"s3://{s3_bucket}/svc"), AWS_SECRET_ACCESS_KEY=secret,
               MINTPIPE_DATA_DIR=str(tmp_path / service), MINTPIPE_AMQP_URL="amqp://guest:guest@127.0.0.1:9/",
               MINTPIPE_LOG_LEVEL="DEBUG")
    done = subprocess.run([sys.executable, "-m", service], env=env, capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" in output
    assert secret not in output


def test_a_malformed_url_is_refused_by_the_settings_naming_the_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MINTPIPE_"))}
    env.update(MINTPIPE_ARTIFACTS_URL="s3://Not_A_Bucket/x", MINTPIPE_DATA_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "renderer"], env=env, capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 2
    assert "MINTPIPE_ARTIFACTS_URL" in done.stderr and "bucket name" in done.stderr


def test_a_pin_copies_the_verified_object_server_side_and_never_a_changed_one(seaweed, s3_url, s3_ipfs, tmp_path):
    from mintpipe.core.cid import cid_of_file
    from mintpipe.objects.artifacts_s3 import S3ArtifactStore
    from mintpipe.objects.s3 import TRAFFIC

    store = S3ArtifactStore(open_bucket(s3_url, AwsSettings(**seaweed.aws_env())), tmp_path / "pinner")
    job_id, data = uuid.uuid4().hex, random.Random(8).randbytes(300_000)
    put_job(store, job_id, {"image.gif": data, "other.gif": data + b"!"})
    with store.verified_copy(f"{job_id}/image.gif", hashlib.sha256(data).hexdigest()) as path:
        before = TRAFFIC.snapshot()
        pinned = s3_ipfs.add_file(path, "image/gif", "image.gif", cid_of_file(path))
        after = TRAFFIC.snapshot()
    assert after["by_operation"].get("CopyObject", 0) == before["by_operation"].get("CopyObject", 0) + 1
    assert after["bytes_sent"] - before["bytes_sent"] < 10_000, "the pin uploaded the bytes again"
    assert s3_ipfs.read(pinned.cid) == data and s3_ipfs.get(pinned.cid).content_type == "image/gif"

    # The object changes after it was downloaded and hashed: the copy is refused (ETag) and the verified bytes
    # are uploaded instead, so a CID never names other bytes than its own.
    changed = data[::-1]
    with store.verified_copy(f"{job_id}/other.gif", hashlib.sha256(data + b"!").hexdigest()) as path:
        seaweed.client().put_object(Bucket=store.bucket.name, Key=store._key(f"{job_id}/other.gif"), Body=changed)
        second = s3_ipfs.add_file(path, "image/gif", "other.gif", cid_of_file(path))
    assert s3_ipfs.read(second.cid) == data + b"!"


def test_the_default_local_folder_never_loads_the_s3_client(tmp_path):
    # boto3's import alone is ~35 MB of a process's memory (bench/artifacts_s3.py) and ~1.1 s of its start here.
    code = ("import sys; from mintpipe.bootstrap import open_stores_or_exit; "
            "from mintpipe.config import ServiceSettings; "
            f"a, i = open_stores_or_exit(ServiceSettings(data_dir={str(tmp_path)!r}), True); "
            "print(type(a).__name__, type(i).__name__, 'botocore' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MINTPIPE_"))}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          cwd=ROOT, check=True)
    assert done.stdout.split() == ["ArtifactStore", "LocalIpfsStore", "False"]
