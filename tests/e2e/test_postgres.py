"""The whole system on PostgreSQL (MINTPIPE_DATABASE_URL): `mintpipe up` with two pinners, a job submitted over
HTTP reaches `pinned`, and every table it touched (job, history, pins, budget, request slots) is in PostgreSQL,
with no SQLite file left in the data folder."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mintpipe.v1 import jobs_pb2
from tests.e2e.conftest import launched
from tests.e2e.test_pipeline import WALLET, follow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def rows(dsn: str, sql: str) -> list[tuple]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def test_a_job_runs_to_pinned_with_every_table_in_postgresql(rabbit_url, pg_dsn, tmp_path):
    env = {"MINTPIPE_DATABASE_URL": pg_dsn, "GATEWAY_MONTHLY_PINS": "1000", "PINNER_MONTHLY_PINS": "1000"}
    with launched(rabbit_url, tmp_path, renderers=1, pinners=2, env=env) as system, \
            httpx.Client(base_url=system.base_url, timeout=30) as client:
        reply = client.post("/v1/jobs", json={"settings": {"seed": 5}, "wallet": WALLET},
                            headers={"Idempotency-Key": "pg-e2e-1"})
        assert reply.status_code == 202, reply.text
        job_id = reply.json()["job_id"]
        seen = follow(client, job_id)
        assert [e["stage"] for e in seen][-1] == "pinned", seen[-1]
        job = client.get(f"/v1/jobs/{job_id}").json()
        again = client.post("/v1/jobs", json={"settings": {"seed": 5}, "wallet": WALLET},
                            headers={"Idempotency-Key": "pg-e2e-1"})
        assert again.json()["job_id"] == job_id, "the idempotency key lives in PostgreSQL too"

    assert job["stage"] == "pinned" and job["token_uri"].startswith("ipfs://")
    stored = asyncio.run(rows(pg_dsn, f"SELECT stage, token_uri, published FROM jobs WHERE job_id = '{job_id}'"))
    assert stored == [(jobs_pb2.STAGE_PINNED, job["token_uri"], 1)], stored
    history = asyncio.run(rows(pg_dsn, f"SELECT stage FROM stage_history WHERE job_id = '{job_id}' ORDER BY id"))
    assert [s for (s,) in history][-1] == jobs_pb2.STAGE_PINNED
    pins = asyncio.run(rows(pg_dsn, f"SELECT backend, cid FROM pins WHERE job_id = '{job_id}'"))
    assert len(pins) == 4 and {b for b, _ in pins} == {"local"}, pins
    assert asyncio.run(rows(pg_dsn, f"SELECT token_uri FROM job_results WHERE job_id = '{job_id}'")) == \
        [(job["token_uri"],)]
    assert asyncio.run(rows(pg_dsn, "SELECT COUNT(*) FROM reservations")) == [(0,)], "the budget hold was let go"
    leftovers = sorted(p.name for p in tmp_path.rglob("*.sqlite3*"))
    assert leftovers == [], f"SQLite files made despite MINTPIPE_DATABASE_URL: {leftovers}"
