"""mintpipe over three hosts sharing no disk and no loopback (tests/support/netns.py, tests/support/multihost.py):
gateway + status x2 on `app`, two renderers on `render`, the pinner on `pin`, each service with its own empty
data folder; RabbitMQ, PostgreSQL, SeaweedFS (S3), the Pinata emulator and anvil reached over the veths.

Jobs are submitted to status-0 and followed over SSE on status-1 until `minted` (each job's mint transaction
sent from a collector's wallet when it is `pinned`, and never reported: the chain watcher, on whichever replica
leads, must see it). Mid-run status-0 (the first leader) and renderer-0 are SIGKILLed while renders are in
flight. The ledger (submitted, accepted, pinned, minted, failed, lost, duplicate uploads) is printed and must
show every job minted, none failed or lost, and no content uploaded twice."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from httpx_sse import connect_sse

from tests.support.chain import TestChain
from tests.support.emulator import running_emulator
from tests.support.multihost import Deps, multihost_system
from tests.support.netns import hosts

pytestmark = [pytest.mark.multihost, pytest.mark.chain, pytest.mark.timeout(420)]

JOBS = 8
RUN_TIMEOUT = 240.0  # seconds for every job to reach minted; ~40 s idle on two cores


@pytest.fixture
def database_url(pg_database: str) -> str:
    """This run's database (tests/support/postgres.py, dropped when the run ends), as the machine reaches it;
    the whole database, not a schema: the replicas' LISTEN/NOTIFY and advisory locks are database-wide."""
    from tests.support.postgres import dsn_for

    return dsn_for(pg_database)


class Follower(threading.Thread):
    """One job's SSE stream on a replica until minted (or failed), reconnecting if the stream drops."""

    def __init__(self, base_url: str, job_id: str, on_pinned) -> None:
        super().__init__(daemon=True, name=f"sse-{job_id[:8]}")
        self.base_url, self.job_id, self.on_pinned = base_url, job_id, on_pinned
        self.stages: list[str] = []
        self.reconnects = 0
        self.lags: list[float] = []  # seconds from the change (event id: the record's updated_at) to its arrival
        self.error: str | None = None
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT
        with httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(10, read=60)) as client:
            while time.monotonic() < deadline and not self.done.is_set():
                try:
                    with connect_sse(client, "GET", f"/v1/jobs/{self.job_id}/events",
                                     params={"until": "minted"}) as sse:
                        for event in sse.iter_sse():
                            if event.event != "job":
                                continue
                            job = json.loads(event.data)
                            if self.stages:  # the first is the job as it was when the stream opened
                                self.lags.append(time.time() - float(event.id))
                            if not self.stages or self.stages[-1] != job["stage"]:
                                self.stages.append(job["stage"])
                            if job["stage"] == "pinned" and self.stages.count("pinned") == 1:
                                self.on_pinned(job)
                            if job["stage"] in ("minted", "failed"):
                                self.done.set()
                                return
                except (httpx.HTTPError, json.JSONDecodeError) as exc:
                    self.error = repr(exc)
                self.reconnects += 1
                time.sleep(0.5)


def leader_since(log_path: Path, after: float) -> float:
    """Seconds from `after` (epoch) until this status replica logged that it became the leader."""
    for line in log_path.read_text().splitlines():
        if '"this replica is the leader"' in line:
            at = datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00")).timestamp()
            if at >= after:
                return at - after
    raise AssertionError("status-1 never took the lead after status-0 was killed")


def test_jobs_cross_three_hosts_and_survive_a_status_replica_and_a_renderer_killed(
        rabbit_url: str, chain: TestChain, database_url: str, tmp_path: Path) -> None:
    from tests.support.seaweed import running_seaweed

    with hosts(["app", "render", "pin"]) as net, running_seaweed(tmp_path / "seaweed") as seaweed, \
            running_emulator(jwt=f"jwt-{uuid.uuid4().hex}") as emulator:
        bucket = seaweed.create_bucket()
        deps = Deps(amqp_url=rabbit_url, database_url=database_url, artifacts_url=f"s3://{bucket}/multihost",
                    aws_env=seaweed.aws_env(), pinata_url=emulator.url, pinata_jwt=emulator.jwt,
                    chain_env={**chain.env(confirmations=0, relay=False)})
        admin_token = uuid.uuid4().hex
        status_env = {"STATUS_CHAIN_POLL_SECONDS": "0.5", "STATUS_ADMIN_TOKEN": admin_token}
        root = tmp_path / "hosts"
        with multihost_system(net, deps, root, renderers=2, status_env=status_env) as system:
            submit_to, watch_on = system.status
            collector = chain.collector_keys[0]
            wallet = chain.address_of(collector)
            mint_lock = threading.Lock()
            mint_errors: list[str] = []

            def mint(job: dict) -> None:
                # What the collector's wallet does with the job's ready transaction; never reported to status.
                tx = job["mint"]["tx"]
                try:
                    with mint_lock:
                        sender = Account.from_key(collector)
                        full = {"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16),
                                "from": sender.address, "chainId": chain.chain_id, "gasPrice": chain.w3.eth.gas_price,
                                "nonce": chain.w3.eth.get_transaction_count(sender.address, "pending")}
                        full["gas"] = chain.w3.eth.estimate_gas({k: full[k] for k in ("from", "to", "data", "value")})
                        chain.w3.eth.send_raw_transaction(sender.sign_transaction(full).raw_transaction)
                except Exception as exc:  # counted: a job that cannot be minted shows in the ledger
                    mint_errors.append(f"{job['job_id']}: {exc!r}")

            submitted, accepted, refusals = 0, [], []
            with httpx.Client(base_url=submit_to.url, timeout=30) as client:
                for seed in range(JOBS):
                    submitted += 1
                    reply = client.post("/v1/jobs", json={"settings": {"seed": 1000 + seed, "frames": 120},
                                                          "wallet": wallet},
                                        headers={"Idempotency-Key": f"mh-{uuid.uuid4().hex}"})
                    if reply.status_code == 202:
                        accepted.append(reply.json()["job_id"])
                    else:
                        refusals.append(f"{reply.status_code} {reply.text[:300]}")
            assert not refusals, refusals
            followers = {job_id: Follower(watch_on.url, job_id, mint) for job_id in accepted}
            for follower in followers.values():
                follower.start()

            # Kill while renders are in flight: once renderer-0 has a job at `rendering` (the operators' stage
            # history names the replica), it and status-0 (the first leader) are SIGKILLed.
            admin = httpx.Client(base_url=watch_on.url, timeout=10, headers={"Authorization": f"Bearer {admin_token}"})

            def history(job_id: str) -> list[dict]:
                reply = admin.get(f"/v1/admin/jobs/{job_id}/detail")
                assert reply.status_code == 200, reply.text
                return reply.json()["history"]

            deadline = time.monotonic() + 60
            interrupted: list[str] = []
            while not interrupted:
                for j in accepted:
                    stages = {(h["stage"], h["replica"]) for h in history(j)}
                    if ("rendering", "renderer-0") in stages and not any(s == "rendered" for s, _ in stages):
                        interrupted.append(j)
                        break
                assert time.monotonic() < deadline, "renderer-0 rendered nothing in 60 s: " + repr(
                    {j: (f.stages, f.error) for j, f in followers.items()})
                time.sleep(0.1)
            in_flight = sum(1 for f in followers.values() if "pinned" not in f.stages)
            system.kill("renderer-0")
            system.kill("status-0")
            killed_at, killed_wall = time.monotonic(), time.time()

            for follower in followers.values():
                follower.join(RUN_TIMEOUT)
            recovery = time.monotonic() - killed_at
            with httpx.Client(base_url=watch_on.url, timeout=30) as client:
                final = {job_id: client.get(f"/v1/jobs/{job_id}").json() for job_id in accepted}
            finished_by = {j: {h["replica"] for h in history(j) if h["stage"] == "rendered"} for j in interrupted}
            admin.close()
            redone = [j for j, by in finished_by.items() if by == {"renderer-1"}]
            uploads = emulator.stats()["uploads_per_cid"]
            takeover = leader_since(system.services["status-1"].log_path, killed_wall)
            seaweed_keys = seaweed.keys(bucket, "multihost/")

        stages = {job_id: doc.get("stage") for job_id, doc in final.items()}
        ledger = {
            "submitted": submitted,
            "accepted": len(accepted),
            "pinned": sum(1 for f in followers.values() if "pinned" in f.stages),
            "minted": sum(1 for s in stages.values() if s == "minted"),
            "failed": sum(1 for s in stages.values() if s == "failed"),
            "lost": sum(1 for s in stages.values() if s not in ("minted", "failed")),
            "duplicate uploads": sum(n - 1 for n in uploads.values() if n > 1),
        }
        mode = "network namespaces + veth" if net.isolated else f"LOOPBACK FALLBACK ({net.refused})"
        print(f"\nmulti-host ledger ({mode}; killed {', '.join(system.killed)} with {in_flight} job(s) not yet "
              f"pinned, {len(redone)} render(s) cut short on renderer-0, redone on renderer-1; "
              f"status-1 led {takeover:.2f} s after "
              f"the kill; all minted {recovery:.1f} s after it; SSE reconnects "
              f"{sum(f.reconnects for f in followers.values())}; forwarded connections "
              f"{net.forwarder.connections if net.forwarder else 0}):")
        for key, value in ledger.items():
            print(f"  {key:18} {value}")
        lags = sorted(lag for f in followers.values() for lag in f.lags)
        if lags:
            print(f"  SSE lag on status-1 (change applied on either replica -> event received here): median "
                  f"{1000 * lags[len(lags) // 2]:.1f} ms, max {1000 * lags[-1]:.1f} ms over {len(lags)} events")
        problems = {j: (f.stages, f.error) for j, f in followers.items() if not f.stages or f.stages[-1] != "minted"}
        assert in_flight >= JOBS // 2, "the kills came too late to be mid-run"
        # A job renderer-0 was rendering when it died was rendered again by the survivor (one it was seen rendering
        # may have been finished between that look and the kill: those count as not interrupted).
        assert redone, f"no render was interrupted by the kill: {finished_by}"
        assert not mint_errors, mint_errors
        assert not problems, f"jobs not followed to minted on the other replica: {problems}\n" + system.logs()[-6000:]
        assert ledger == {"submitted": JOBS, "accepted": JOBS, "pinned": JOBS, "minted": JOBS, "failed": 0,
                          "lost": 0, "duplicate uploads": 0}, ledger
        # The rendered files crossed from the render host to the pin host through the object store (each service
        # had only its own folder), and every service's folder is its own.
        assert seaweed_keys, "nothing was written to the object store"
        assert len({s.data_dir for s in system.services.values()}) == len(system.services) == 6
        for key in (chain.signer_key, seaweed.secret_key, emulator.jwt):
            assert key.removeprefix("0x") not in system.logs()
