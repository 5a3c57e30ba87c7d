"""The whole system on a chain, started by the launcher as a user would: against an anvil the tests started
(the configured-chain path), and the embedded default (`mintpipe demo` starts its own anvil and mints).

submit -> pinned -> the job's `mint.tx` sent from an anvil account -> reported -> minted, over HTTP, SSE and
gRPC; a mint made while status was down (killed, restarted by the launcher) is caught by the watcher and
counted once; the launcher refuses a chain configuration that cannot work, naming the variable; no key
appears in any log or response."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from eth_account import Account
from httpx_sse import connect_sse

from mintpipe.v1 import jobs_pb2, status_pb2, status_pb2_grpc
from tests.conftest import free_port, free_port_base
from tests.e2e.conftest import launched
from tests.support.broker import drop_prefix
from tests.support.chain import TestChain

pytestmark = [pytest.mark.e2e, pytest.mark.chain, pytest.mark.timeout(300)]


def follow(client: httpx.Client, job_id: str, until: str) -> list[dict]:
    seen = []
    with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", params={"until": until},
                     timeout=httpx.Timeout(10, read=120)) as sse:
        for event in sse.iter_sse():
            if event.event == "job":
                seen.append(json.loads(event.data))
    return seen


def send_mint(chain: TestChain, tx: dict, sender_key: str) -> str:
    sender = Account.from_key(sender_key)
    full = {"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16), "from": sender.address,
            "nonce": chain.w3.eth.get_transaction_count(sender.address, "pending"), "chainId": chain.chain_id,
            "gasPrice": chain.w3.eth.gas_price}
    full["gas"] = chain.w3.eth.estimate_gas({k: full[k] for k in ("from", "to", "data", "value")})
    return chain.w3.eth.send_raw_transaction(sender.sign_transaction(full).raw_transaction).to_0x_hex()


def status_pid(data_dir: Path) -> int:
    """The running status process of the system whose data folder this is."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[1:3] == [b"-m", b"status"] and f"MINTPIPE_DATA_DIR={data_dir.resolve()}".encode() in environ:
            return int(entry.name)
    raise AssertionError("no status process found")


def wait_stage(client: httpx.Client, job_id: str, stage: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job.get("stage") == stage:
                return job
        except httpx.TransportError:
            pass  # status restarting
        assert time.monotonic() < deadline, f"job {job_id} not {stage} in {timeout} s"
        time.sleep(0.3)


def test_submit_pin_mint_report_minted_and_a_restart_in_between(chain: TestChain, rabbit_url, tmp_path) -> None:
    collector = chain.collector_keys[0]
    wallet = chain.address_of(collector)
    env = {**chain.env(confirmations=1), "MINTPIPE_LOG_LEVEL": "DEBUG"}  # the chattiest logs, for the key grep
    with launched(rabbit_url, tmp_path, renderers=1, env=env) as system, \
            httpx.Client(base_url=system.base_url, timeout=30) as client:
        accepted = [client.post("/v1/jobs", json={"settings": {"seed": s, "frames": 12}, "wallet": wallet}).json()
                    for s in (31, 32, 33)]
        first, second, third = (a["job_id"] for a in accepted)
        assert all(len(a["claim_token"]) == 43 for a in accepted)
        seen = follow(client, first, "pinned")
        assert seen[-1]["stage"] == "pinned" and seen[-1]["mint"]["voucher"]["to"] == wallet
        job = seen[-1]
        assert client.get("/v1/chain").json()["contract"] == chain.address

        tx_hash = send_mint(chain, job["mint"]["tx"], collector)
        reported = time.monotonic()
        reply = client.post(f"/v1/jobs/{first}/mint", json={"tx_hash": tx_hash})
        assert reply.status_code == 202 and reply.json()["state"] == "confirming", reply.text
        chain.mine(1)
        stages = [e["stage"] for e in follow(client, first, "minted")]
        assert stages[-1] == "minted"
        print(f"report -> minted: {time.monotonic() - reported:.2f} s (1 confirmation, one block mined)")
        job = client.get(f"/v1/jobs/{first}").json()
        assert job["tx_hash"] == tx_hash and chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
        assert chain.contract.functions.tokenURI(job["token_id"]).call() == job["token_uri"]

        port = _status_grpc_port(system.log_path)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            got = status_pb2_grpc.StatusServiceStub(channel).GetJob(status_pb2.GetJobRequest(job_id=first), timeout=10)
        assert got.stage == jobs_pb2.STAGE_MINTED and got.token_id == str(job["token_id"]) and got.tx_hash == tx_hash

        # Status is killed; the second job is minted while it is down and never reported.
        second_job = wait_stage(client, second, "pinned", 120)
        os.kill(status_pid(system.data_dir), signal.SIGKILL)
        second_hash = send_mint(chain, second_job["mint"]["tx"], collector)
        chain.mine(2)
        job = wait_stage(client, second, "minted", 90)
        assert job["tx_hash"] == second_hash
        minted = client.get("/v1/jobs", params={"stage": "minted"}).json()["jobs"]
        assert sorted(j["job_id"] for j in minted) == sorted([first, second])
        assert len({j["token_id"] for j in minted}) == 2

        # The third is relayed: the service sends it and pays; the token goes to the job's wallet.
        wait_stage(client, third, "pinned", 120)
        # ... asked for from the CLI, which then follows it to minted and prints the token.
        cli = [sys.executable, "-m", "launcher"]
        done = subprocess.run([*cli, "mint", third, "--relay", "--url", system.base_url], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 1 and "--claim-token" in done.stderr  # only the submitter may ask
        done = subprocess.run([*cli, "mint", third, "--relay", "--claim-token", accepted[0]["claim_token"], "--url",
                               system.base_url], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "claim_token" in done.stderr  # another job's token
        done = subprocess.run([*cli, "mint", third, "--relay", "--claim-token", accepted[2]["claim_token"], "--url",
                               system.base_url], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and json.loads(done.stdout)["relayed"], done.stderr
        chain.mine(1)
        done = subprocess.run([*cli, "job", third, "--wait-minted", "--url", system.base_url], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        job = json.loads(done.stdout)
        assert job["stage"] == "minted" and job["token_id"] and job["block"] and job["minted_at"]
        done = subprocess.run([*cli, "mint", third, "--tx-hash", "0x" + "ef" * 32, "--url", system.base_url],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "already minted" in done.stderr
        assert chain.contract.functions.ownerOf(job["token_id"]).call() == wallet
        sender = chain.w3.eth.get_transaction(job["tx_hash"])["from"]
        assert sender == chain.address_of(chain.relayer_key)
    logs = system.log_path.read_text() + "".join(p.read_text() for p in system.data_dir.glob("**/*.log"))
    for key in (chain.signer_key, chain.relayer_key):
        assert key.removeprefix("0x") not in logs


def _status_grpc_port(log_path: Path) -> int:
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and '"service": "status"' in line and '"event": "ready"' in line:
            return json.loads(line)["grpc"]
    raise AssertionError("status never said ready")


def _launcher(env: dict[str, str], data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if "CHAIN_" not in k}
    full = {**inherited, "MINTPIPE_DATA_DIR": str(data_dir), "MINTPIPE_HTTP_PORT": str(free_port()),
            "MINTPIPE_PORT_BASE": str(free_port_base()), **env}
    return subprocess.run([sys.executable, "-m", "launcher", *args], env=full, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("missing", ["MINTPIPE_CHAIN_CONTRACT", "MINTPIPE_CHAIN_SIGNER_KEY"])
def test_launcher_refuses_an_incomplete_chain_naming_the_variable(chain: TestChain, tmp_path, missing) -> None:
    env = {k: v for k, v in chain.env().items() if k != missing}
    done = _launcher(env, tmp_path, "up")
    assert done.returncode == 2 and missing in done.stderr, done.stderr
    assert "mintpipe is up" not in done.stdout


def test_launcher_refuses_an_address_without_code(chain: TestChain, tmp_path) -> None:
    env = {**chain.env(), "MINTPIPE_CHAIN_CONTRACT": chain.address_of(chain.collector_keys[6])}
    done = _launcher(env, tmp_path, "up")
    assert done.returncode == 2 and "MINTPIPE_CHAIN_CONTRACT: no contract code" in done.stderr, done.stderr


def test_demo_starts_its_own_chain_and_mints(rabbit_url, tmp_path) -> None:
    env = {"MINTPIPE_AMQP_URL": rabbit_url, "MINTPIPE_BROKER_PREFIX": f"demo{os.getpid()}{time.time_ns() % 10**6}"}
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"seed": 5, "frames": 12}))
    try:
        done = _launcher(env, tmp_path / "data", "demo", "--settings", str(settings), timeout=240)
    finally:
        drop_prefix(rabbit_url, env["MINTPIPE_BROKER_PREFIX"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "anvil's well-known dev keys" in out  # said in the log
    token = next(line for line in out.splitlines() if line.startswith("token id"))
    assert token.split(":")[1].strip().isdigit()
    assert "tx hash   : 0x" in out and "token URI : ipfs://" in out
    assert (tmp_path / "data" / "chain" / "deployment.json").exists()
