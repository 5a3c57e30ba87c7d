"""A user's view of the whole system: submit over HTTP, follow the live events, fetch what was pinned."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from httpx_sse import connect_sse

from mintpipe.core.cid import cid_of_bytes
from tests.support.media import decode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WALLET = "0x000000000000000000000000000000000000dEaD"
ORDER = ["queued", "rendering", "rendered", "pinning", "pinned"]


def follow(client: httpx.Client, job_id: str) -> list[dict]:
    seen = []
    with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(10, read=120)) as sse:
        assert sse.response.headers["content-type"].startswith("text/event-stream")
        for event in sse.iter_sse():
            seen.append(json.loads(event.data))
    return seen


def job_count(client: httpx.Client) -> int:
    return len(client.get("/v1/jobs", params={"limit": 100}).json()["jobs"])


@pytest.fixture
def client(system):
    with httpx.Client(base_url=system.base_url, timeout=30) as c:
        yield c


def test_a_job_runs_to_pinned_and_its_pinned_assets_are_real(client, tmp_path):
    reply = client.post("/v1/jobs", json={"settings": {"seed": 11}, "wallet": WALLET})
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["stage"] == "queued" and body["status_url"] == f"/v1/jobs/{body['job_id']}"

    seen = follow(client, body["job_id"])
    stages = [e["stage"] for e in seen]
    assert stages[-1] == "pinned", seen[-1]
    assert [ORDER.index(s) for s in stages] == sorted(ORDER.index(s) for s in stages), "stage went backwards"
    progress = [e["progress"] for e in seen]
    assert progress == sorted(progress) and progress[-1] == 100
    assert "rendering" in stages and len(seen) >= 5, "progress was not streamed as it happened"

    job = client.get(body["status_url"]).json()
    assert job["stage"] == "pinned" and job["wallet"] == WALLET and job["error"] is None
    meta_cid = job["token_uri"].removeprefix("ipfs://")
    assert job["assets"]["metadata"] == job["token_uri"]

    meta_reply = client.get(f"/ipfs/{meta_cid}")
    assert meta_reply.status_code == 200 and meta_reply.headers["content-type"].startswith("application/json")
    assert cid_of_bytes(meta_reply.content) == meta_cid, "served bytes do not hash to their CID"
    metadata = meta_reply.json()
    assert metadata["name"] and metadata["description"]
    assert metadata["image"] == job["assets"]["image"]
    assert metadata["properties"]["preview"] == job["assets"]["preview"]
    assert {"trait_type": "Seed", "value": 11, "display_type": "number"} in metadata["attributes"]

    gif_cid = metadata["image"].removeprefix("ipfs://")
    gif_reply = client.get(f"/ipfs/{gif_cid}")
    assert gif_reply.headers["content-type"] == "image/gif"
    assert gif_reply.content[:6] == b"GIF89a"
    assert cid_of_bytes(gif_reply.content) == gif_cid
    gif_path = tmp_path / "image.gif"
    gif_path.write_bytes(gif_reply.content)
    decoded = decode(gif_path)
    assert (decoded.frames, decoded.width, decoded.height) == (100, 512, 512)

    preview = client.get(f"/ipfs/{job['assets']['preview'].removeprefix('ipfs://')}")
    assert preview.headers["content-type"] == "image/png" and preview.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_idempotency_key_gives_the_same_job_and_another_body_gives_409(client):
    key = f"demo-{uuid.uuid4()}"
    first = client.post("/v1/jobs", json={"settings": {"seed": 5}, "wallet": WALLET},
                        headers={"Idempotency-Key": key})
    again = client.post("/v1/jobs", json={"settings": {"seed": 5}, "wallet": WALLET.lower()},
                        headers={"Idempotency-Key": key})
    assert first.status_code == 202 and again.status_code == 202
    assert again.json()["job_id"] == first.json()["job_id"]

    before = job_count(client)
    other = client.post("/v1/jobs", json={"settings": {"seed": 6}, "wallet": WALLET},
                        headers={"Idempotency-Key": key})
    assert other.status_code == 409
    assert other.json()["error"]["field"] == "idempotency_key"
    assert job_count(client) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"settings": {"seed": 1}, "wallet": ', "body"),
        (json.dumps({"settings": {"seed": 1}, "wallet": "0x1234"}).encode(), "wallet"),
        (json.dumps({"settings": {"seed": 1}, "wallet": "0x000000000000000000000000000000000000DeaD"}).encode(),
         "wallet"),
        (json.dumps({"settings": {"frames": 100000}, "wallet": WALLET}).encode(), "settings.frames"),
        (json.dumps({"settings": {"size": 4}, "wallet": WALLET}).encode(), "settings.size"),
        (json.dumps({"settings": {"no_such_knob": 1}, "wallet": WALLET}).encode(), "settings.no_such_knob"),
        (json.dumps({"settings": "seed=1", "wallet": WALLET}).encode(), "settings"),
        (json.dumps({"wallet": WALLET}).encode(), "settings"),
    ],
    ids=["malformed-json", "short-wallet", "bad-checksum", "frames-out-of-range", "size-out-of-range",
         "unknown-setting", "settings-not-object", "settings-missing"],
)
def test_bad_input_gets_400_naming_the_field_and_makes_no_job(client, body, field):
    before = job_count(client)
    reply = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["field"] == field, reply.json()
    assert job_count(client) == before


def test_reference_routes(client):
    assert client.get(f"/v1/jobs/{'0' * 32}").status_code == 404
    assert client.get("/v1/jobs/not-a-job").status_code == 404
    scenes = client.get("/v1/scenes").json()["scenes"]
    gen1 = next(s for s in scenes if s["name"] == "gen1")
    assert gen1["schema"]["properties"]["frames"]["default"] == 100
    assert client.get("/ipfs/not-a-cid").json()["error"]["field"] == "cid"
    assert client.get("/v1/jobs", params={"stage": "nope"}).json()["error"]["field"] == "stage"
    # The launcher starts a local chain and a minter by default: the bridge checks that it reaches the minter.
    assert client.get("/healthz").json()["checks"] == {"broker": True, "store": True, "minter": True, "disk": True}
    assert "mintpipe_submissions_total" in client.get("/metrics").text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events", "/v1/scenes", "/ipfs/{cid}"} <= set(paths)
    oversized = client.post("/v1/jobs", content=b"{" + b" " * 200_000 + b"}",
                            headers={"content-type": "application/json"})
    assert oversized.status_code == 413


def test_a_pinned_jobs_rendered_files_leave_the_disk_and_its_health_shows_the_volume(client, system):
    # The e2e system runs with STATUS_ARTIFACT_KEEP_PINNED_SECONDS=0 and a sweep every second.
    reply = client.post("/v1/jobs", json={"settings": {"seed": 12, "frames": 20, "size": 256}, "wallet": WALLET})
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["job_id"]
    assert follow(client, job_id)[-1]["stage"] == "pinned"
    folder = system.data_dir / "artifacts" / job_id
    deadline = time.monotonic() + 30
    while folder.exists():
        assert time.monotonic() < deadline, f"{folder} still holds {sorted(p.name for p in folder.iterdir())}"
        time.sleep(0.2)
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["stage"] == "pinned" and client.get(f"/ipfs/{job['assets']['image'].removeprefix('ipfs://')}"
                                                   ).status_code == 200, "the pinned content itself must stay"
    health = client.get("/healthz").json()
    assert health["checks"]["disk"] is True and health["disk"]["free_bytes"] > 0
