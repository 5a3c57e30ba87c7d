"""POST /v1/jobs over real HTTP, many at once (so the bridge's fast path and its batches to the gateway are used),
and the submissions the fast path hands to FastAPI: the same statuses, bodies and headers either way."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.live_bridge import live_bridge

pytestmark = pytest.mark.integration
WALLET = "0x000000000000000000000000000000000000dEaD"


async def test_concurrent_submissions_each_get_their_answer(rabbit_url, tmp_path):
    with live_bridge(rabbit_url, tmp_path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            first = await http.post("/v1/jobs", json={"settings": {"seed": 1}, "wallet": WALLET},
                                    headers={"Idempotency-Key": "taken"})
            assert first.status_code == 202
            answers = await asyncio.gather(
                *(http.post("/v1/jobs", json={"settings": {"seed": 10 + i}, "wallet": WALLET},
                            headers={"Idempotency-Key": f"k-{i}"}) for i in range(30)),
                http.post("/v1/jobs", json={"settings": {"seed": 1}, "wallet": WALLET},
                          headers={"Idempotency-Key": "taken"}),
                http.post("/v1/jobs", json={"settings": {"seed": 2}, "wallet": WALLET},
                          headers={"Idempotency-Key": "taken"}),
                http.post("/v1/jobs", json={"settings": {"frames": 3}, "wallet": WALLET}))
            made = answers[:30]
            assert all(a.status_code == 202 for a in made)
            assert all(a.headers["location"] == a.json()["status_url"] == f"/v1/jobs/{a.json()['job_id']}"
                       for a in made)
            assert len({a.json()["job_id"] for a in made}) == 30
            assert all(a.json()["stage"] == "queued" for a in made)
            same, conflict, invalid = answers[30:]
            assert same.status_code == 202 and same.json()["job_id"] == first.json()["job_id"]
            assert conflict.status_code == 409 and conflict.json()["error"]["field"] == "idempotency_key"
            assert invalid.status_code == 400 and invalid.json()["error"]["field"] == "settings.frames"
            for a in made[:3]:  # stored before the 202
                assert (await http.get(a.headers["location"])).json()["stage"] == "queued"


async def test_what_the_fast_path_does_not_take_is_answered_as_before(rabbit_url, tmp_path):
    with live_bridge(rabbit_url, tmp_path, max_body_bytes=1024) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            body = '{"settings": {"seed": 1}, "wallet": "' + WALLET + '"}'
            plain = await http.post("/v1/jobs", content=body, headers={"Content-Type": "text/plain"})
            assert plain.status_code == 400 and plain.json()["error"]["code"] == "invalid_argument"
            broken = await http.post("/v1/jobs", content=body[:-1], headers={"Content-Type": "application/json"})
            assert broken.status_code == 400 and broken.json()["error"]["field"] == "body"
            extra = await http.post("/v1/jobs", json={"settings": {}, "wallet": WALLET, "colour": "red"})
            assert extra.status_code == 400 and extra.json()["error"]["field"] == "colour"
            huge = await http.post("/v1/jobs", json={"settings": {"x": "y" * 2000}, "wallet": WALLET})
            assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
            bad_key = await http.post("/v1/jobs", json={"settings": {}, "wallet": WALLET},
                                      headers={"Idempotency-Key": "a b"})
            assert bad_key.status_code == 400 and bad_key.json()["error"]["field"] == "Idempotency-Key"
            charset = await http.post("/v1/jobs", content=body,
                                      headers={"Content-Type": "application/json; charset=utf-8"})
            assert charset.status_code == 202 and charset.headers["content-type"] == "application/json"
