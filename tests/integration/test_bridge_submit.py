"""POST /v1/jobs over real HTTP, many at once (so the bridge's fast path and its batches to the gateway are used),
and the submissions the fast path hands to FastAPI: the same statuses, bodies and headers either way."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from mintpipe.limits.memory import KeyedRateLimiter
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


async def test_the_lean_route_and_the_framework_answer_byte_for_byte_alike(rabbit_url, tmp_path):
    """Each request twice: as the lean route takes it, and chunked (no Content-Length), which it hands to FastAPI.
    Status, raw headers (but Date) and body bytes must be the same."""
    limiter = KeyedRateLimiter(rate=1, per=3600, burst=3)  # per wallet: three submissions, then 429s
    with live_bridge(rabbit_url, tmp_path, wallet_limiter=limiter) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            async def both(doc: dict, key: str | None = None) -> tuple[httpx.Response, httpx.Response]:
                raw = json.dumps(doc).encode()
                headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}

                async def chunked():
                    yield raw

                lean = await http.post("/v1/jobs", content=raw, headers=headers)
                framework = await http.post("/v1/jobs", content=chunked(), headers=headers)
                return lean, framework

            def seen(response: httpx.Response) -> tuple:
                return (response.status_code, [h for h in response.headers.raw if h[0].lower() != b"date"],
                        response.content)

            def alike(pair: tuple[httpx.Response, httpx.Response], status: int) -> httpx.Response:
                lean, framework = pair
                assert lean.status_code == status
                assert seen(lean) == seen(framework)
                return lean

            accepted = alike(await both({"settings": {"seed": 1}, "wallet": "0x" + "1" * 40}, "same"), 202)
            assert accepted.headers["location"] == accepted.json()["status_url"]
            conflict_wallet = "0x" + "2" * 40
            assert (await http.post("/v1/jobs", json={"settings": {"seed": 1}, "wallet": conflict_wallet},
                                    headers={"Idempotency-Key": "taken"})).status_code == 202
            alike(await both({"settings": {"seed": 2}, "wallet": conflict_wallet}, "taken"), 409)
            invalid = alike(await both({"settings": {"frames": 3}, "wallet": WALLET}), 400)
            assert invalid.json()["error"]["field"] == "settings.frames"
            large = alike(await both({"settings": {"x": "y" * 17000}, "wallet": WALLET}), 400)
            assert large.json()["error"] == {"code": "invalid_argument", "field": "settings",
                                             "message": "settings: larger than 16384 bytes"}
            bad_key = alike(await both({"settings": {}, "wallet": WALLET}, "a b"), 400)
            assert bad_key.json()["error"]["field"] == "Idempotency-Key"

            busy = "0x" + "3" * 40
            for seed in range(3):
                assert (await http.post("/v1/jobs", json={"settings": {"seed": seed}, "wallet": busy})
                        ).status_code == 202
            for _ in range(3):  # Retry-After counts down by the second: a pair may straddle one, then once more
                lean, framework = await both({"settings": {"seed": 9}, "wallet": busy})
                if lean.headers.get("retry-after") == framework.headers.get("retry-after"):
                    break
            assert lean.status_code == 429 and int(lean.headers["retry-after"]) > 3000
            assert seen(lean) == seen(framework)


async def test_a_request_with_two_content_types_is_the_frameworks_to_answer(rabbit_url, tmp_path):
    with live_bridge(rabbit_url, tmp_path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            body = json.dumps({"settings": {"seed": 1}, "wallet": WALLET}).encode()
            answer = await http.post("/v1/jobs", content=body, headers=[
                ("Content-Type", "text/plain"), ("Content-Type", "application/json")])
            # FastAPI reads the first one: not JSON, so the body is refused as it always was (a lean route that
            # read the last one would have accepted it).
            assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_argument"
