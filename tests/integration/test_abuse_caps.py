"""Abuse caps over real HTTP (bridge → real gateway → real broker and store): per-IP and per-wallet submission
limits answer 429 with Retry-After; a body over the cap is 413 however it is sent; settings that nest too deep
or weigh too much are 400 naming the field. Nothing refused becomes a job."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from mintpipe.core.scenes import MAX_SETTINGS_BYTES, MAX_SETTINGS_DEPTH
from mintpipe.limits.memory import KeyedRateLimiter
from tests.support.live_bridge import live_bridge

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
IP_BURST, WALLET_BURST, BODY_CAP = 4, 2, 16 * 1024


def wallet() -> str:
    return "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


@pytest.fixture(scope="module")
def client(rabbit_url, tmp_path_factory):
    with live_bridge(rabbit_url, tmp_path_factory.mktemp("abuse-bridge"), trust_forwarded_for=True,
                     ip_limiter=KeyedRateLimiter(1, 60, IP_BURST), wallet_limiter=KeyedRateLimiter(1, 60, WALLET_BURST),
                     max_body_bytes=BODY_CAP) as url, httpx.Client(base_url=url, timeout=20) as http:
        yield http


def jobs_of(client: httpx.Client, owner: str) -> int:
    return len(client.get("/v1/jobs", params={"wallet": owner}).json()["jobs"])


def submit(client: httpx.Client, owner: str, ip: str, settings: object = None) -> httpx.Response:
    return client.post("/v1/jobs", json={"settings": settings or {"seed": 1}, "wallet": owner}, headers=from_ip(ip))


def test_one_ip_is_limited_with_retry_after_while_others_go_on(client):
    ip = "198.51.100.7"
    accepted = [submit(client, wallet(), ip) for _ in range(IP_BURST)]
    assert [r.status_code for r in accepted] == [202] * IP_BURST
    limited = submit(client, owner := wallet(), ip)
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"]["code"] == "rate_limited"
    assert jobs_of(client, owner) == 0
    assert submit(client, owner, "198.51.100.8").status_code == 202  # another address is not held back


def test_one_wallet_is_limited_with_retry_after_from_any_ip(client):
    owner = wallet()
    accepted = [submit(client, owner, f"203.0.113.{n}") for n in range(WALLET_BURST)]
    assert [r.status_code for r in accepted] == [202] * WALLET_BURST
    limited = submit(client, owner, "203.0.113.99")
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"]["field"] == "wallet"
    assert jobs_of(client, owner) == WALLET_BURST
    assert submit(client, wallet(), "203.0.113.100").status_code == 202  # another wallet is not held back


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_cap_is_413_however_it_is_sent(client, declared):
    owner = wallet()
    body = json.dumps({"settings": {"seed": 1, "pad": "x" * BODY_CAP}, "wallet": owner}).encode()
    content = body if declared else iter([body[:1000], body[1000:]])  # a generator is sent chunked
    reply = client.post("/v1/jobs", content=content, headers={"content-type": "application/json",
                                                               **from_ip("192.0.2.50")})
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"] == {"code": "payload_too_large", "field": "body",
                                     "message": f"request body over {BODY_CAP} bytes"}
    assert jobs_of(client, owner) == 0


@pytest.mark.parametrize(
    "settings",
    [
        {"seed": 1, "palette": json.loads("[" * 1000 + "]" * 1000)},
        {"seed": 1, "palette": json.loads("[" * (MAX_SETTINGS_DEPTH + 1) + "]" * (MAX_SETTINGS_DEPTH + 1))},
        {"seed": 1, "palette": ["#" + "a" * 100] * (MAX_SETTINGS_BYTES // 100)},
    ],
    ids=["nested-1000", "one-level-too-deep", "over-the-size-cap"],
)
def test_settings_too_deep_or_too_big_are_400_naming_settings(client, settings):
    owner = wallet()
    reply = submit(client, owner, f"192.0.2.{uuid.uuid4().int % 200}", settings)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["field"] == "settings", reply.json()
    assert ("nested deeper" in reply.text) or ("larger than" in reply.text)
    assert jobs_of(client, owner) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"settings": {"seed": 1, "palette": "\\ud800"}, "wallet": "%s"}', "settings.palette"),
        ('{"settings": {"\\udc00": 1}, "wallet": "%s"}', "settings.\\udc00"),
        ('{"settings": {"seed": 1}, "wallet": "%s\\ud800"}', "wallet"),
    ],
    ids=["surrogate-value", "surrogate-key", "surrogate-wallet"],
)
def test_a_lone_surrogate_is_400_naming_the_field_not_a_5xx(client, body, field):
    # JSON allows a "\ud800" escape, which decodes to text no UTF-8 encoder accepts.
    owner = wallet()
    reply = client.post("/v1/jobs", content=(body % owner).encode(), headers={
        "Content-Type": "application/json", **from_ip(f"198.51.100.{uuid.uuid4().int % 200}")})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["field"] == field, reply.json()
    assert jobs_of(client, owner) == 0
