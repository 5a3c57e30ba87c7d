"""mintpipe over four hosts sharing no disk and no loopback (tests/support/netns.py, tests/support/multihost.py):
gateway + status x2 + minter-0 on `app`, two renderers on `render`, the pinner on `pin`, minter-1 on `mint`, each
service with its own empty data folder; RabbitMQ, PostgreSQL, SeaweedFS (S3), the Pinata emulator and anvil
reached over the veths. Only the minters hold the chain's keys (signer and relayer); status reaches them over
gRPC and has no key in its environment.

Jobs are submitted to status-0 and followed over SSE on status-1 until `minted`. Two kinds, interleaved:
- wallet jobs: each job's mint transaction sent from a collector's wallet when it is `pinned`, and never reported
  to status: the chain watcher, on whichever minter is the active consumer of the watch queue, must see it;
- relayed jobs (each to a wallet of its own): once every one is `pinned`, relayed mints are asked for all at once
  on status-1 with each job's claim token (from the 202 of POST /v1/jobs). The bridge answers at once
  (STATUS_RELAY_WAIT_SECONDS=0), so each relay is `queued` there and held only by the broker's relay queue.
Mid-run status-0 (the first leader) and renderer-0 are SIGKILLed while renders are in flight; mid-relay, right
after the first "relayed mint sent" line, the minter that wrote it (the relay queue's active consumer) is
SIGKILLed and the other must send the rest. The ledger is printed and must show every job minted once (one token
per job on chain, totalMinted up by exactly the number of jobs), the relayer's nonces consecutive with no gap and
no duplicate, no "nonce too low" anywhere, none failed or lost, and no content uploaded twice. The takeover (kill
to the survivor's first relayed mint) is measured and printed."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from httpx_sse import connect_sse

from mintpipe.chain import bytes32_to_job_id, job_id_to_bytes32
from tests.support.chain import TestChain
from tests.support.emulator import running_emulator
from tests.support.multihost import KEY_VARIABLES, Deps, Service, multihost_system
from tests.support.netns import hosts

pytestmark = [pytest.mark.multihost, pytest.mark.chain, pytest.mark.timeout(540)]

JOBS = 8  # minted from a collector's wallet
RELAY_JOBS = 6  # relayed by the minters, asked for all at once
RUN_TIMEOUT = 300.0  # seconds for every job to reach minted; ~40 s idle on two cores for 8 jobs


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


def assert_keyless(service: Service, keys: list[str], environ: dict[str, str]) -> None:
    """No chain key variable and no key's value anywhere in this environment."""
    named = [k for k in KEY_VARIABLES if k in environ]
    assert not named, f"{service.name} has {named} in its environment: only the minters hold keys"
    for key in keys:
        held = [k for k, v in environ.items() if key.removeprefix("0x").lower() in v.lower()]
        assert not held, f"{service.name} holds a chain key in {held}"


def test_jobs_cross_four_hosts_and_survive_a_status_replica_a_renderer_and_the_active_minter_killed(
        rabbit_url: str, chain: TestChain, database_url: str, tmp_path: Path) -> None:
    from tests.support.seaweed import running_seaweed

    relayer = chain.address_of(chain.relayer_key)
    total_before = chain.contract.functions.totalMinted().call()
    relayer_nonce_before = chain.w3.eth.get_transaction_count(relayer)
    first_block = chain.w3.eth.block_number + 1
    keys = [chain.signer_key, chain.relayer_key]
    with hosts(["app", "render", "pin", "mint"]) as net, running_seaweed(tmp_path / "seaweed") as seaweed, \
            running_emulator(jwt=f"jwt-{uuid.uuid4().hex}") as emulator:
        bucket = seaweed.create_bucket()
        # Relaying on: the relayer key goes to the minters (and only to them) with the signer key.
        deps = Deps(amqp_url=rabbit_url, database_url=database_url, artifacts_url=f"s3://{bucket}/multihost",
                    aws_env=seaweed.aws_env(), pinata_url=emulator.url, pinata_jwt=emulator.jwt,
                    chain_env={**chain.env(confirmations=0, relay=True)})
        admin_token = uuid.uuid4().hex
        status_env = {"STATUS_ADMIN_TOKEN": admin_token,
                      # every relay request comes from the test's one address
                      "STATUS_RELAY_IP_RATE_PER_MINUTE": "600", "STATUS_RELAY_IP_BURST": "100",
                      # the bridge answers `queued` at once: the relay is then the broker's alone to hand on
                      "STATUS_RELAY_WAIT_SECONDS": "0"}
        minter_env = {"MINTER_CHAIN_POLL_SECONDS": "0.5", "MINTER_CHAIN_CONFIRMATIONS": "0"}
        root = tmp_path / "hosts"
        with multihost_system(net, deps, root, renderers=2, minter_hosts=("app", "mint"), status_env=status_env,
                              minter_env=minter_env) as system:
            submit_to, watch_on = system.status
            minters = {m.name: m for m in system.minters}
            assert len(minters) == 2 and {m.host.name for m in minters.values()} == {"app", "mint"}
            # The keys: the minters have them, nothing else does (the status replicas' live environments too).
            for service in system.services.values():
                if service.module == "minter":
                    assert service.env["MINTPIPE_CHAIN_RELAYER_KEY"] == chain.relayer_key
                else:
                    assert_keyless(service, keys, service.env)
            for service in system.status:
                assert_keyless(service, keys, service.live_environ())
                assert service.live_environ()["STATUS_MINTER_TARGET"].count(",") == 1

            collector = chain.collector_keys[0]
            wallet = chain.address_of(collector)
            mint_lock = threading.Lock()
            mint_errors: list[str] = []
            refetched: list[str] = []
            relay_pinned: set[str] = set()
            all_relay_pinned = threading.Event()
            relay_jobs: dict[str, str] = {}  # job id -> its claim token

            def mint(job: dict) -> None:
                # What the collector's wallet does with the job's ready transaction; never reported to status.
                try:
                    if not job.get("mint"):  # the minter it asked did not answer (one was just killed): ask again
                        refetched.append(job["job_id"])
                        for _ in range(40):
                            time.sleep(0.25)
                            job = httpx.get(f"{watch_on.url}/v1/jobs/{job['job_id']}", timeout=10).json()
                            if job.get("mint"):
                                break
                    tx = job["mint"]["tx"]
                    with mint_lock:
                        sender = Account.from_key(collector)
                        full = {"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16),
                                "from": sender.address, "chainId": chain.chain_id, "gasPrice": chain.w3.eth.gas_price,
                                "nonce": chain.w3.eth.get_transaction_count(sender.address, "pending")}
                        full["gas"] = chain.w3.eth.estimate_gas({k: full[k] for k in ("from", "to", "data", "value")})
                        chain.w3.eth.send_raw_transaction(sender.sign_transaction(full).raw_transaction)
                except Exception as exc:  # counted: a job that cannot be minted shows in the ledger
                    mint_errors.append(f"{job['job_id']}: {exc!r}")

            def on_pinned(job: dict) -> None:
                if job["job_id"] not in relay_jobs:
                    mint(job)
                    return
                with mint_lock:
                    relay_pinned.add(job["job_id"])
                    if len(relay_pinned) == len(relay_jobs):
                        all_relay_pinned.set()

            # Interleaved: wallet, relay, wallet, relay, ... (the relayed ones render fewer frames).
            kinds = [k for i in range(max(JOBS, RELAY_JOBS))
                     for k, n in (("wallet", JOBS), ("relay", RELAY_JOBS)) if i < n]
            submitted, accepted, refusals = 0, [], []
            with httpx.Client(base_url=submit_to.url, timeout=30) as client:
                for seed, kind in enumerate(kinds):
                    submitted += 1
                    owner = wallet if kind == "wallet" else Account.create().address
                    reply = client.post("/v1/jobs", json={"settings": {"seed": 1000 + seed,
                                                                       "frames": 120 if kind == "wallet" else 60},
                                                          "wallet": owner},
                                        headers={"Idempotency-Key": f"mh-{uuid.uuid4().hex}"})
                    if reply.status_code == 202:
                        accepted.append(reply.json()["job_id"])
                        if kind == "relay":
                            assert reply.json().get("claim_token"), reply.json()
                            relay_jobs[reply.json()["job_id"]] = reply.json()["claim_token"]
                    else:
                        refusals.append(f"{reply.status_code} {reply.text[:300]}")
            assert not refusals, refusals
            assert len(relay_jobs) == RELAY_JOBS
            wallet_jobs = [j for j in accepted if j not in relay_jobs]
            followers = {job_id: Follower(watch_on.url, job_id, on_pinned) for job_id in accepted}
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
                # Only the jobs rendering now (as their SSE streams say): a look at all 14 histories a round took
                # long enough for renderer-0 to finish the job it was seen rendering before the kill.
                for j in [j for j in accepted if followers[j].stages[-1:] == ["rendering"]]:
                    stages = {(h["stage"], h["replica"]) for h in history(j)}
                    if ("rendering", "renderer-0") in stages and not any(s == "rendered" for s, _ in stages):
                        interrupted.append(j)
                        break
                assert time.monotonic() < deadline, "renderer-0 rendered nothing in 60 s: " + repr(
                    {j: (f.stages, f.error) for j, f in followers.items()})
                time.sleep(0.05)
            in_flight = sum(1 for f in followers.values() if "pinned" not in f.stages)
            system.kill("renderer-0")
            system.kill("status-0")
            killed_at, killed_wall = time.monotonic(), time.time()

            # Every relayed job pinned: their relays asked for all at once on status-1 (the bridge left), each with
            # its claim token, while this thread watches the minters' logs for the first relayed mint sent.
            assert all_relay_pinned.wait(RUN_TIMEOUT), "relayed jobs not all pinned: " + repr(
                {j: (followers[j].stages, followers[j].error) for j in relay_jobs})
            answers: dict[str, tuple[int, dict, float]] = {}

            def ask_relay(job_id: str) -> None:
                with httpx.Client(base_url=watch_on.url, timeout=30) as client:
                    reply = client.post(f"/v1/jobs/{job_id}/mint",
                                        json={"relay": True, "claim_token": relay_jobs[job_id]})
                answers[job_id] = (reply.status_code, reply.json(), time.time())

            pool = ThreadPoolExecutor(RELAY_JOBS)
            relays_asked = time.time()
            asked = [pool.submit(ask_relay, j) for j in relay_jobs]
            deadline = time.monotonic() + 60
            active: Service | None = None
            while active is None:
                active = next((m for m in minters.values() if m.events("relayed mint sent")), None)
                if active is None:
                    assert time.monotonic() < deadline, "no relayed mint sent within 60 s of the requests:\n" + \
                        "\n".join(f"--- {m.name}:\n{m.log_tail(2000)}" for m in minters.values()) + repr(answers)
                    time.sleep(0.01)
            system.kill(active.name)
            minter_killed_wall = time.time()
            for future in asked:
                future.result(60)
            pool.shutdown()
            survivor = next(m for m in minters.values() if m is not active)

            for follower in followers.values():
                follower.join(RUN_TIMEOUT)
            recovery = time.monotonic() - killed_at
            with httpx.Client(base_url=watch_on.url, timeout=30) as client:
                final = {job_id: client.get(f"/v1/jobs/{job_id}").json() for job_id in accepted}
                # Asked again once minted: the job's mint as it is (200, `minted`), never a second relay; and a
                # relay with another job's claim token is refused.
                again = {j: client.post(f"/v1/jobs/{j}/mint", json={"relay": True, "claim_token": t})
                         for j, t in relay_jobs.items()}
                some, other = list(relay_jobs)[:2]
                stranger = client.post(f"/v1/jobs/{some}/mint", json={"relay": True, "claim_token": relay_jobs[other]})
            finished_by = {j: {h["replica"] for h in history(j) if h["stage"] == "rendered"} for j in interrupted}
            admin.close()
            redone = [j for j, by in finished_by.items() if by == {"renderer-1"}]
            uploads = emulator.stats()["uploads_per_cid"]
            takeover = leader_since(system.services["status-1"].log_path, killed_wall)
            seaweed_keys = seaweed.keys(bucket, "multihost/")
            sent_by_killed = active.events("relayed mint sent")
            sent_by_survivor = [e for e in survivor.events("relayed mint sent") if e["at"] >= minter_killed_wall]
            minted_by_survivor = [e for e in survivor.events("minted") if e["at"] >= minter_killed_wall]
            killed_watched = bool(active.events("minted"))
            logs = system.logs()
            anvil_log = chain.anvil.log_path.read_text(errors="replace") if chain.anvil.log_path.exists() else ""

        # The chain's own account of it: every VoucherRedeemed of the collection since the run began.
        event = chain.contract.events.VoucherRedeemed()
        entries = chain.w3.eth.get_logs({"address": chain.address, "fromBlock": first_block, "toBlock": "latest",
                                         "topics": [event.topic]})
        redeemed: dict[str, list] = {}
        for entry in entries:
            args = event.process_log(entry)["args"]
            redeemed.setdefault(bytes32_to_job_id(args["jobId"]), []).append(entry["transactionHash"].to_0x_hex())
        tokens = {j: chain.contract.functions.tokenOfJob(job_id_to_bytes32(j)).call() for j in accepted}
        total_after = chain.contract.functions.totalMinted().call()
        txs = {j: chain.w3.eth.get_transaction(hashes[0]) for j, hashes in redeemed.items() if j in tokens}
        relay_nonces = sorted(txs[j]["nonce"] for j in relay_jobs if j in txs)
        relayer_nonce_after = chain.w3.eth.get_transaction_count(relayer)

        stages = {job_id: doc.get("stage") for job_id, doc in final.items()}
        ledger = {
            "submitted": submitted,
            "accepted": len(accepted),
            "pinned": sum(1 for f in followers.values() if "pinned" in f.stages),
            "minted": sum(1 for s in stages.values() if s == "minted"),
            "relayed": sum(1 for j in relay_jobs if j in txs and txs[j]["from"] == relayer),
            "failed": sum(1 for s in stages.values() if s == "failed"),
            "lost": sum(1 for s in stages.values() if s not in ("minted", "failed")),
            "duplicate uploads": sum(n - 1 for n in uploads.values() if n > 1),
            "duplicate mints": sum(len(h) - 1 for h in redeemed.values()),
        }
        queued_before_kill = sorted(j for j, (_, doc, at) in answers.items()
                                    if doc.get("state") == "queued" and at < minter_killed_wall)
        relay_takeover = sent_by_survivor[0]["at"] - minter_killed_wall if sent_by_survivor else None
        minted_takeover = minted_by_survivor[0]["at"] - minter_killed_wall if minted_by_survivor else None
        mode = "network namespaces + veth" if net.isolated else f"LOOPBACK FALLBACK ({net.refused})"
        print(f"\nmulti-host ledger ({mode}; killed {', '.join(system.killed)} with {in_flight} job(s) not yet "
              f"pinned, {len(redone)} render(s) cut short on renderer-0, redone on renderer-1; "
              f"status-1 led {takeover:.2f} s after "
              f"the kill; all minted {recovery:.1f} s after it; SSE reconnects "
              f"{sum(f.reconnects for f in followers.values())}; forwarded connections "
              f"{net.forwarder.connections if net.forwarder else 0}):")
        for key, value in ledger.items():
            print(f"  {key:18} {value}")
        print(f"  relays: {RELAY_JOBS} asked at once on status-1, answered "
              f"{sorted((code, doc.get('state')) for code, doc, _ in answers.values())}, {len(queued_before_kill)} "
              f"answered `queued` before the kill; {active.name} (on `{active.host.name}`, the active sender"
              f"{' and watcher' if killed_watched else ''}) SIGKILLed "
              f"{minter_killed_wall - relays_asked:.2f} s after the requests, having logged {len(sent_by_killed)} "
              f"relayed mint(s); {survivor.name} (on `{survivor.host.name}`) sent {len(sent_by_survivor)} after it")
        print("  minter takeover: kill -> first relayed mint sent by the survivor "
              + (f"{relay_takeover:.2f} s" if relay_takeover is not None else "NEVER")
              + "; kill -> its first `minted` "
              + (f"{minted_takeover:.2f} s" if minted_takeover is not None else "none")
              + (" (the watch role moved to it too)" if killed_watched else " (it was the watcher already)"))
        print(f"  relayer nonces {relay_nonces} (account nonce {relayer_nonce_before} -> {relayer_nonce_after}); "
              f"wallet jobs whose `mint` had to be read again (a minter did not answer): {len(refetched)}")
        lags = sorted(lag for f in followers.values() for lag in f.lags)
        if lags:
            print(f"  SSE lag on status-1 (change applied on either replica -> event received here): median "
                  f"{1000 * lags[len(lags) // 2]:.1f} ms, max {1000 * lags[-1]:.1f} ms over {len(lags)} events")
        problems = {j: (f.stages, f.error) for j, f in followers.items() if not f.stages or f.stages[-1] != "minted"}
        total = JOBS + RELAY_JOBS
        assert in_flight >= total // 2, "the kills came too late to be mid-run"
        # A job renderer-0 was rendering when it died was rendered again by the survivor (one it was seen rendering
        # may have been finished between that look and the kill: those count as not interrupted).
        assert redone, f"no render was interrupted by the kill: {finished_by}"
        assert not mint_errors, mint_errors
        assert not problems, f"jobs not followed to minted on the other replica: {problems}\n" + logs[-6000:]
        assert ledger == {"submitted": total, "accepted": total, "pinned": total, "minted": total,
                          "relayed": RELAY_JOBS, "failed": 0, "lost": 0, "duplicate uploads": 0,
                          "duplicate mints": 0}, ledger

        # The relays: every one answered 202 (the bridge does not wait: `queued`), and the kill came mid-relay:
        # the killed minter had sent some but not all, and the survivor sent the rest.
        assert all(code == 202 and doc["state"] in ("queued", "pending") for code, doc, _ in answers.values()), answers
        assert len(answers) == RELAY_JOBS
        assert 1 <= len(sent_by_killed) < RELAY_JOBS, f"the kill was not mid-relay: {len(sent_by_killed)} sent"
        assert sent_by_survivor, f"{survivor.name} sent no relay after the kill:\n{survivor.log_tail()}"
        # Minted exactly once each: one token per job, all distinct, totalMinted up by exactly the jobs.
        assert set(redeemed) == set(accepted), set(accepted) ^ set(redeemed)
        assert all(tokens.values()) and len(set(tokens.values())) == total, tokens
        assert total_after - total_before == total, (total_before, total_after)
        # Relayed jobs from the relayer, wallet jobs from the collector; what status serves is what the chain says.
        assert all(txs[j]["from"] == relayer for j in relay_jobs), {j: txs[j]["from"] for j in relay_jobs}
        assert all(txs[j]["from"] == wallet for j in wallet_jobs), {j: txs[j]["from"] for j in wallet_jobs}
        for j in accepted:
            assert (final[j]["tx_hash"] or "").lower() == redeemed[j][0].lower(), final[j]
            assert str(final[j]["token_id"]) == str(tokens[j]), final[j]
        # The relayer's nonces: consecutive from where the account stood, no gap, no duplicate, none wasted.
        assert relay_nonces == list(range(relayer_nonce_before, relayer_nonce_before + RELAY_JOBS)), relay_nonces
        assert relayer_nonce_after == relayer_nonce_before + RELAY_JOBS, relayer_nonce_after
        assert "nonce too low" not in logs.lower() and "nonce too low" not in anvil_log.lower()
        for j, reply in again.items():
            assert reply.status_code == 200 and reply.json()["state"] == "minted", reply.text
            assert (reply.json()["tx_hash"] or "").lower() == redeemed[j][0].lower(), reply.text
        assert stranger.status_code == 403 and stranger.json()["error"]["code"] == "claim_mismatch", stranger.text
        # The rendered files crossed from the render host to the pin host through the object store (each service
        # had only its own folder), and every service's folder is its own.
        assert seaweed_keys, "nothing was written to the object store"
        assert len({s.data_dir for s in system.services.values()}) == len(system.services) == 8
        for key in (chain.signer_key, chain.relayer_key, seaweed.secret_key, emulator.jwt):
            assert key.removeprefix("0x") not in logs
