"""docker-compose.yml run for real: the images built here with no registry (scripts/build_images.sh), the whole
topology up with three renderers and two minters on the compose file's dev chain (anvil, the collection deployed
by chain-deploy), jobs taken to `pinned` through the published bridge port while a renderer is killed mid-render
and RabbitMQ's container is restarted, and nothing lost; then jobs taken on to `minted`, relayed with their claim
tokens and sent from a wallet through the published anvil port. Its own compose project per run, removed with its
volumes at the end. A machine where Docker cannot run fails here, saying why."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from launcher.deploy_cli import dev_collection_address, dev_keys
from mintpipe.core.cid import cid_of_bytes
from tests.conftest import free_port

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
# Enough default-sized jobs that the run lasts while the renderer is killed and the broker restarted: with 8
# small clips (30 frames of 256 px) an idle 2-core machine pinned them all 3 s after submission, before any
# renderer could be caught rendering (CI saw "no renderer was seen rendering a job"). 24 default jobs keep three
# renderers busy for ~15-20 s here.
JOBS = 24
SETTINGS: dict = {}
SKIP_HINT = "(deselect these tests with -m 'not deploy' on a machine meant to run without Docker)"


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def require_docker() -> None:
    """Docker engine and Compose v2 present and answering, or a failure naming what is missing."""
    try:
        info = _run(["docker", "info", "--format", "{{.ServerVersion}}"], 30)
    except FileNotFoundError:
        pytest.fail(f"no `docker` command: scripts/bootstrap.sh installs docker.io {SKIP_HINT}")
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers ({info.stderr.strip()[-300:]}): scripts/bootstrap.sh starts dockerd "
                    f"unless MINTPIPE_SKIP_DOCKER=1 {SKIP_HINT}")
    compose = _run(["docker", "compose", "version", "--short"], 30)
    if compose.returncode != 0:
        pytest.fail(f"no Compose v2 (`docker compose`): {compose.stderr.strip()[-300:]} {SKIP_HINT}")


@dataclass
class Deployment:
    project: str
    env: dict[str, str]
    base_url: str
    chain_url: str
    start: float = field(default_factory=time.monotonic)
    ledger: list[str] = field(default_factory=list)

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        done = _run(["docker", "compose", "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), *args],
                    timeout, self.env)
        if check and done.returncode != 0:
            pytest.fail(f"docker compose {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}\n"
                        f"{self.logs()}")
        return done

    def container(self, service: str, index: int = 1) -> str:
        return f"{self.project}-{service}-{index}"

    def logs(self, tail: int = 40) -> str:
        done = _run(["docker", "compose", "-p", self.project, "-f", str(ROOT / "docker-compose.yml"), "logs",
                     "--no-color", "--tail", str(tail)], 60, self.env)
        return done.stdout[-12000:]

    def note(self, what: str) -> None:
        """A line of the run's ledger, timed from the start of the image build."""
        self.ledger.append(f"{time.monotonic() - self.start:7.1f} s  {what}")


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployment]:
    require_docker()
    start = time.monotonic()
    built = _run(["bash", "scripts/build_images.sh"], 1200)
    if built.returncode != 0:
        pytest.fail(f"scripts/build_images.sh exited {built.returncode}:\n{built.stdout[-2000:]}{built.stderr[-3000:]}")
    port, chain_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINTPIPE_CHAIN_", "MINTER_CHAIN_"))}  # dev chain
    deployment = Deployment(f"mpdeploy{uuid.uuid4().hex[:8]}",
                            {**env, "MINTPIPE_HTTP_PORT": str(port), "MINTPIPE_CHAIN_PORT": str(chain_port)},
                            f"http://127.0.0.1:{port}", f"http://127.0.0.1:{chain_port}", start)
    steps = re.sub(r"\x1b\[[0-9;]*m", "", built.stdout)
    deployment.note("images built: " + "; ".join(
        line.split("[images] ", 1)[1] for line in steps.splitlines() if "[images] " in line and "done:" not in line))
    try:
        deployment.compose("up", "-d", "--wait", "--scale", "renderer=3", "--scale", "minter=2", timeout=420)
        deployment.note("compose up --wait --scale renderer=3 --scale minter=2: every service healthy")
        yield deployment
    finally:
        down = deployment.compose("down", "-v", "--remove-orphans", "--timeout", "60", timeout=300, check=False)
        label = f"label=com.docker.compose.project={deployment.project}"
        left = _run(["docker", "volume", "ls", "-q", "--filter", label], 30).stdout.split()
        deployment.note(f"down -v: exit {down.returncode}, volumes left {left}")
        sys.stderr.write("\ncompose ledger:\n" + "\n".join(deployment.ledger) + "\n")
        assert down.returncode == 0 and not left, (down.stderr[-2000:], left)


def test_no_volume_is_shared_between_services(deployed: Deployment):
    d = deployed
    ids = deployed.compose("ps", "-q").stdout.split()
    inspected = json.loads(_run(["docker", "inspect", *ids], 60).stdout)
    users: dict[str, set[str]] = {}
    for c in inspected:
        service = c["Config"]["Labels"]["com.docker.compose.service"]
        for mount in c["Mounts"]:
            assert mount["Type"] == "volume", f"{service}: a {mount['Type']} mount of {mount.get('Source')}"
            users.setdefault(mount["Name"], set()).add(service)
    shared = {name: sorted(s) for name, s in users.items() if len(s) > 1}
    assert not shared, shared
    assert {s for s in users.values() for s in s} == {"postgres", "seaweedfs", "rabbitmq", "anvil"}, users
    services = {c["Config"]["Labels"]["com.docker.compose.service"] for c in inspected}
    assert sum(c["Config"]["Labels"]["com.docker.compose.service"] == "renderer" for c in inspected) == 3
    assert sum(c["Config"]["Labels"]["com.docker.compose.service"] == "status" for c in inspected) == 2
    assert sum(c["Config"]["Labels"]["com.docker.compose.service"] == "minter" for c in inspected) == 2
    assert {"gateway", "pinner", "bridge", "anvil"} <= services
    # The one-shot deploy ran and is done.
    deploy = json.loads(_run(["docker", "inspect", d.container("chain-deploy")], 60).stdout)[0]
    assert (deploy["State"]["Status"], deploy["State"]["ExitCode"]) == ("exited", 0), deploy["State"]


def _busy_renderer(d: Deployment, rendering: set[str]) -> str | None:
    """A renderer container whose log names a job that is rendering now."""
    for i in (1, 2, 3):
        log = _run(["docker", "logs", "--tail", "200", d.container("renderer", i)], 30)
        text = log.stdout + log.stderr
        if any(job_id in text for job_id in rendering):
            return d.container("renderer", i)
    return None


def test_jobs_reach_pinned_through_a_renderer_kill_and_a_broker_restart(deployed: Deployment):
    d = deployed
    jobs: dict[str, dict] = {}
    with httpx.Client(base_url=d.base_url, timeout=30) as client:
        for seed in range(JOBS):
            wallet = f"0x{seed + 1:040x}"  # a collector each: one wallet's burst is 20 (GATEWAY_WALLET_BURST)
            reply = client.post("/v1/jobs", json={"settings": {"seed": 700 + seed, **SETTINGS}, "wallet": wallet})
            assert reply.status_code == 202, reply.text
            jobs[reply.json()["job_id"]] = reply.json()
        d.note(f"{JOBS} jobs submitted through the bridge port")
        killed = restarted = None
        deadline = time.monotonic() + 600
        while True:
            for job_id in jobs:
                try:
                    reply = client.get(f"/v1/jobs/{job_id}")
                except httpx.TransportError:
                    continue  # a bridge between two status replicas' answers: asked again next round
                if reply.status_code == 200:
                    jobs[job_id] = reply.json()
            stages = [j["stage"] for j in jobs.values()]
            rendering = {i for i, j in jobs.items() if j["stage"] == "rendering"}
            if killed is None and rendering:
                killed = _busy_renderer(d, rendering)
                if killed:
                    _run(["docker", "kill", "--signal", "KILL", killed], 30).check_returncode()
                    d.note(f"killed {killed} (SIGKILL) mid-render; stages {sorted(stages)}")
            if killed and restarted is None and "pinned" in stages and len(set(stages)) > 1:
                # Mid-run: some jobs done, some not. RabbitMQ gets 30 s to stop cleanly, as an operator's restart.
                restarted = _run(["docker", "restart", "--time", "30", d.container("rabbitmq")], 120)
                restarted.check_returncode()
                d.note(f"restarted {d.container('rabbitmq')}; stages {sorted(stages)}")
            if all(s in ("pinned", "failed") for s in stages) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        d.note("final stages: " + json.dumps({s: stages.count(s) for s in sorted(set(stages))}))
        assert killed, "no renderer was seen rendering a job, so none was killed mid-render"
        assert restarted, f"the run ended before RabbitMQ could be restarted mid-run: {stages}"
        failed = {i: j.get("error") for i, j in jobs.items() if j["stage"] == "failed"}
        assert not failed, f"jobs failed: {failed}\n{d.logs()}"
        unfinished = {i: j["stage"] for i, j in jobs.items() if j["stage"] != "pinned"}
        assert not unfinished, f"jobs not pinned in 10 min: {unfinished}\n{d.logs()}"

        # What was pinned is served through the bridge by whichever status replica answers, from the object store
        # (no status container shares a disk with the pinner).
        for job in jobs.values():
            cid = job["token_uri"].removeprefix("ipfs://")
            served = client.get(f"/ipfs/{cid}")
            assert served.status_code == 200 and cid_of_bytes(served.content) == cid, (cid, served.status_code)
            image = served.json()["image"].removeprefix("ipfs://")
            gif = client.get(f"/ipfs/{image}")
            assert gif.content[:6] == b"GIF89a" and cid_of_bytes(gif.content) == image
        d.note(f"all {JOBS} pinned, none failed; every metadata and GIF served through the bridge by CID")


def _until(what: str, check, seconds: float, explain=lambda: ""):
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f} s\n{explain()}")
        time.sleep(0.5)


def _minter_queues(d: Deployment) -> str:
    """The minter's queues as RabbitMQ sees them (messages, consumers): who is there to send and to watch."""
    listed = _run(["docker", "exec", d.container("rabbitmq"), "su", "rabbitmq", "-s", "/bin/sh", "-c",
                   "HOME=/var/lib/rabbitmq rabbitmqctl -n rabbit@localhost list_queues -q name messages consumers"], 60)
    return "\n".join(line for line in listed.stdout.splitlines()
                     if ".minter." in line and ".retry." not in line) or listed.stderr[-500:]


def test_compose_mints_on_its_dev_chain(deployed: Deployment):
    """`docker compose up` mints too: two jobs relayed with their claim tokens (one sender across the two minter
    replicas: consecutive nonces, one transaction each), one minted from a wallet with the job's `mint.tx` sent
    through the published anvil port; each ends `minted` with its token on chain."""
    from eth_account import Account
    from web3 import Web3

    d = deployed
    contract = dev_collection_address()
    w3 = Web3(Web3.HTTPProvider(d.chain_url, request_kwargs={"timeout": 30}))
    assert w3.eth.chain_id == 31337 and w3.eth.get_code(contract)
    relayer = Account.from_key(dev_keys(3)[2]).address
    relayer_nonce = w3.eth.get_transaction_count(relayer)
    with httpx.Client(base_url=d.base_url, timeout=60) as client:
        chain = client.get("/v1/chain")
        assert chain.status_code == 200, chain.text  # not 404 no_chain
        info = chain.json()
        assert (info["chain_id"], info["contract"], info["rpc_url"]) == (31337, contract, d.chain_url), info
        assert any(e.get("name") == "mint" for e in info["abi"])

        submitted = []
        for i in range(3):
            reply = client.post("/v1/jobs", json={"settings": {"seed": 4200 + i, **SETTINGS},
                                                  "wallet": f"0x{0xbeef00 + i:040x}"})
            assert reply.status_code == 202, reply.text
            assert reply.json()["claim_token"]
            submitted.append(reply.json())
        d.note("3 jobs submitted to mint")

        def job(job_id: str) -> dict:
            reply = client.get(f"/v1/jobs/{job_id}")
            return reply.json() if reply.status_code == 200 else {"stage": "?"}

        def all_at(stage: str) -> list[dict] | None:
            jobs = [job(s["job_id"]) for s in submitted]
            failed = [j for j in jobs if j["stage"] == "failed"]
            assert not failed, f"jobs failed: {failed}\n{d.logs()}"
            return jobs if all(j["stage"] == stage for j in jobs) else None

        pinned = _until("3 jobs pinned", lambda: all_at("pinned"), 300)
        assert all(j["mint"] and j["mint"]["contract"] == contract for j in pinned), pinned
        d.note("3 jobs pinned, each with its voucher and ready transaction")

        # A stranger who knows the job id cannot relay it.
        stranger = client.post(f"/v1/jobs/{submitted[0]['job_id']}/mint",
                               json={"relay": True, "claim_token": "x" * 43})
        assert stranger.status_code == 403 and stranger.json()["error"]["code"] == "claim_mismatch", stranger.text
        relay_hashes: dict[str, str] = {}
        for sub in submitted[:2]:
            relayed = client.post(f"/v1/jobs/{sub['job_id']}/mint",
                                  json={"relay": True, "claim_token": sub["claim_token"]})
            assert relayed.status_code in (200, 202), relayed.text
            assert relayed.json()["relayed"] is True
            if relayed.json()["tx_hash"]:
                relay_hashes[sub["job_id"]] = relayed.json()["tx_hash"]
        d.note(f"2 relays asked for with their claim tokens ({len(relay_hashes)} answered with a transaction)")

        # The third from a wallet: anvil's dev account 3 sends the job's ready transaction through the published port.
        key = dev_keys(4)[3]
        sender = Account.from_key(key).address
        tx = pinned[2]["mint"]["tx"]
        signed = Account.sign_transaction({
            "to": tx["to"], "data": tx["data"], "value": int(tx["value"] or "0x0", 16), "chainId": 31337,
            "nonce": w3.eth.get_transaction_count(sender), "gas": 600_000,
            "maxFeePerGas": 2 * w3.eth.gas_price + 1, "maxPriorityFeePerGas": 1}, key)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()
        assert w3.eth.wait_for_transaction_receipt(tx_hash, 60)["status"] == 1
        reported = client.post(f"/v1/jobs/{submitted[2]['job_id']}/mint", json={"tx_hash": tx_hash})
        assert reported.status_code in (200, 202), reported.text
        d.note(f"job 3 minted from a wallet ({tx_hash[:10]}...) and reported: {reported.status_code}")

        def explain() -> str:
            jobs = [job(s["job_id"]) for s in submitted]
            mined = []
            for j in jobs:
                if j["stage"] != "minted" and j.get("job_id") in relay_hashes:
                    try:
                        receipt = w3.eth.get_transaction_receipt(relay_hashes[j["job_id"]])
                        where = f"mined in block {receipt['blockNumber']} (status {receipt['status']})"
                    except Exception as exc:  # not mined, or replaced by another hash
                        where = f"not found ({type(exc).__name__})"
                    mined.append(f"{j['job_id']}: relay {relay_hashes[j['job_id']]} {where}, job still {j['stage']}")
            minters = d.compose("logs", "--no-color", "--tail", "60", "minter", check=False).stdout[-6000:]
            return ("stages: " + json.dumps({j.get("job_id"): j["stage"] for j in jobs}) + "\n" + "\n".join(mined)
                    + f"\nchain head {w3.eth.block_number}; relayer nonce {w3.eth.get_transaction_count(relayer)}"
                    + f"\nminter queues (name, messages, consumers):\n{_minter_queues(d)}\n{minters}")

        minted = _until("3 jobs minted", lambda: all_at("minted"), 180, explain)
        token = w3.eth.contract(address=contract, abi=info["abi"])
        for j in minted:
            assert j["token_id"] is not None and j["tx_hash"], j
            assert token.functions.ownerOf(int(j["token_id"])).call() == Web3.to_checksum_address(j["wallet"])
            assert token.functions.tokenURI(int(j["token_id"])).call() == j["token_uri"]
        assert minted[2]["tx_hash"].lower() == tx_hash.lower()
        assert len({j["token_id"] for j in minted}) == 3
        # One relay transaction per relayed job, from the one relayer account: the two minters never both sent.
        assert w3.eth.get_transaction_count(relayer) == relayer_nonce + 2
        d.note("3 jobs minted: tokens " + ", ".join(str(j["token_id"]) for j in minted) + "; relayer nonce +2")
