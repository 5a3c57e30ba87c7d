"""The per-IP submission limit behind a trusted proxy: the client's address is the X-Forwarded-For entry the
proxy appended (the rightmost), so a client writing its own entries to the left cannot dodge the limit."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mintpipe.ipfs_store import LocalIpfsStore
from mintpipe.ratelimit import KeyedRateLimiter
from mintpipe.v1 import gateway_pb2, jobs_pb2
from status.bus import JobBus
from status.http_api import BridgeDeps, create_app
from status.store import JobStore

pytestmark = pytest.mark.unit
BURST = 2
PROXY_PEER = "10.0.0.2"  # the proxy itself, as the bridge's socket sees it


class AcceptingGateway:
    """Stands in for the gateway's gRPC stub: the limit is applied before the bridge calls it."""

    def __init__(self) -> None:
        self.calls = 0

    async def SubmitJob(self, _request, timeout=None):
        self.calls += 1
        return gateway_pb2.SubmitJobResponse(job_id=uuid.uuid4().hex, stage=jobs_pb2.STAGE_QUEUED, created=True)


@pytest.fixture
async def bridge(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    await store.open()
    gateway = AcceptingGateway()
    app = create_app(BridgeDeps(store=store, bus=JobBus(), gateway=gateway, ipfs=LocalIpfsStore(tmp_path / "ipfs"),
                                checks={}, ip_limiter=KeyedRateLimiter(1, 60, BURST), trust_forwarded_for=True))
    transport = httpx.ASGITransport(app=app, client=(PROXY_PEER, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        yield client, gateway
    await store.close()


async def submit(client: httpx.AsyncClient, forwarded: list[str]) -> httpx.Response:
    # Each list item is one header line, as a client and then a proxy may each add one.
    headers = [("X-Forwarded-For", value) for value in forwarded]
    return await client.post("/v1/jobs", headers=headers,
                             json={"settings": {"seed": 1}, "wallet": "0x000000000000000000000000000000000000dEaD"})


async def test_a_client_rotating_a_fake_leftmost_entry_is_still_limited(bridge):
    client, gateway = bridge
    real = "198.51.100.23"  # appended by the proxy: the client cannot change it
    replies = [await submit(client, [f"203.0.113.{n}, {real}"]) for n in range(BURST + 3)]
    assert [r.status_code for r in replies] == [202] * BURST + [429] * 3
    assert replies[-1].json()["error"]["code"] == "rate_limited"
    assert int(replies[-1].headers["Retry-After"]) >= 1
    assert gateway.calls == BURST, "a limited submission must not reach the gateway"


async def test_a_fake_entry_in_a_header_line_of_its_own_is_ignored_too(bridge):
    client, _ = bridge
    real = "198.51.100.24"
    replies = [await submit(client, [f"192.0.2.{n}", real]) for n in range(BURST + 1)]
    assert [r.status_code for r in replies] == [202] * BURST + [429]


async def test_clients_behind_the_proxy_are_limited_separately(bridge):
    client, _ = bridge
    for _ in range(BURST):
        assert (await submit(client, ["198.51.100.30"])).status_code == 202
    assert (await submit(client, ["198.51.100.30"])).status_code == 429
    assert (await submit(client, ["198.51.100.31"])).status_code == 202
    assert (await submit(client, ["spoofed, 198.51.100.99"])).status_code == 202
    # Blank entries (a client ending its header with a comma) do not become the address either.
    assert (await submit(client, ["198.51.100.30 ,  "])).status_code == 429
