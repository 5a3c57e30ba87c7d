"""The per-IP submission limit behind a trusted proxy, over real HTTP in front of the real gateway, status
service, RabbitMQ and job store: the client's address is the X-Forwarded-For entry the proxy appended (the
rightmost), so a client writing its own entries to the left cannot dodge the limit. A limited submission never
reaches the gateway: no job is made, no render job published."""

from __future__ import annotations

import httpx
import pytest

from mintpipe.limits.memory import KeyedRateLimiter
from tests.support.live_bridge import live_bridge

pytestmark = pytest.mark.integration
BURST = 2
WALLET = "0x000000000000000000000000000000000000dEaD"


@pytest.fixture
def bridge(rabbit_url, tmp_path):
    with live_bridge(rabbit_url, tmp_path, ip_limiter=KeyedRateLimiter(1, 60, BURST), trust_forwarded_for=True,
                     wallet_limiter=KeyedRateLimiter(100_000, 60, 100_000)) as url, \
            httpx.Client(base_url=url, timeout=20) as client:
        yield client


def submit(client: httpx.Client, forwarded: list[str], seed: int = 1) -> httpx.Response:
    # Each list item is one header line, as a client and then a proxy may each add one.
    headers = [("X-Forwarded-For", value) for value in forwarded]
    return client.post("/v1/jobs", headers=headers, json={"settings": {"seed": seed}, "wallet": WALLET})


def jobs(client: httpx.Client) -> int:
    return len(client.get("/v1/jobs", params={"limit": 100}).json()["jobs"])


def test_a_client_rotating_a_fake_leftmost_entry_is_still_limited(bridge):
    real = "198.51.100.23"  # appended by the proxy: the client cannot change it
    replies = [submit(bridge, [f"203.0.113.{n}, {real}"], seed=n) for n in range(BURST + 3)]
    assert [r.status_code for r in replies] == [202] * BURST + [429] * 3
    assert replies[-1].json()["error"]["code"] == "rate_limited"
    assert int(replies[-1].headers["Retry-After"]) >= 1
    assert jobs(bridge) == BURST, "a limited submission must not reach the gateway"


def test_a_fake_entry_in_a_header_line_of_its_own_is_ignored_too(bridge):
    real = "198.51.100.24"
    replies = [submit(bridge, [f"192.0.2.{n}", real], seed=n) for n in range(BURST + 1)]
    assert [r.status_code for r in replies] == [202] * BURST + [429]


def test_clients_behind_the_proxy_are_limited_separately(bridge):
    for n in range(BURST):
        assert submit(bridge, ["198.51.100.30"], seed=n).status_code == 202
    assert submit(bridge, ["198.51.100.30"]).status_code == 429
    assert submit(bridge, ["198.51.100.31"]).status_code == 202
    assert submit(bridge, ["spoofed, 198.51.100.99"]).status_code == 202
    # Blank entries (a client ending its header with a comma) do not become the address either.
    assert submit(bridge, ["198.51.100.30,"]).status_code == 429
