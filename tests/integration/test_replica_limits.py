"""Per-IP (bridge) and per-wallet (gateway) submission limits across two replicas on one PostgreSQL database
(issue 11), over real HTTP: what one replica granted counts on the other, so a client gets the budget of one
replica, not two."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mintpipe.limits.postgres import PgRateLimiter
from tests.support.live_bridge import live_bridge

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
IP_BURST, WALLET_BURST = 3, 2


def wallet() -> str:
    return "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]


def submit(client: httpx.Client, owner: str, ip: str) -> httpx.Response:
    return client.post("/v1/jobs", json={"settings": {"seed": 1}, "wallet": owner}, headers={"X-Forwarded-For": ip})


def test_two_replicas_share_the_ip_and_wallet_budgets(rabbit_url, pg_dsn, tmp_path):
    def limiters() -> dict:
        # Each replica its own limiters (its own connections), as each process makes them from the DSN.
        return {"ip_limiter": PgRateLimiter(pg_dsn, "ip", 1, 60, IP_BURST),
                "wallet_limiter": PgRateLimiter(pg_dsn, "wallet", 1, 60, WALLET_BURST)}

    with live_bridge(rabbit_url, tmp_path / "a", trust_forwarded_for=True, **limiters()) as url_a, \
            live_bridge(rabbit_url, tmp_path / "b", trust_forwarded_for=True, **limiters()) as url_b, \
            httpx.Client(base_url=url_a, timeout=20) as a, httpx.Client(base_url=url_b, timeout=20) as b:
        ip = "198.51.100.9"
        granted = [submit(a, wallet(), ip).status_code, submit(b, wallet(), ip).status_code,
                   submit(a, wallet(), ip).status_code]
        assert granted == [202] * IP_BURST
        for replica in (b, a):
            refused = submit(replica, wallet(), ip)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "rate_limited"
        assert submit(b, wallet(), "198.51.100.10").status_code == 202, "another address has its own budget"

        owner = wallet()
        assert submit(a, owner, "203.0.113.1").status_code == 202
        assert submit(b, owner, "203.0.113.2").status_code == 202
        refused = submit(a, owner, "203.0.113.3")
        assert refused.status_code == 429, refused.text
        assert "wallet" in refused.json()["error"]["message"]
