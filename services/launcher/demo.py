"""`mintpipe demo`: one example job end to end against a running system, shown as it happens: submitted,
rendered, pinned, then minted on chain (the job's ready `mint.tx` sent from a dev account of the local
anvil, or relayed by the service on a configured chain), ending with the token id, tx hash and token URI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from httpx_sse import connect_sse
from web3 import Web3

from mintpipe.objects.ipfs import LocalIpfsStore

EXAMPLE_WALLET = "0x000000000000000000000000000000000000dEaD"


def _bar(progress: int, width: int = 30) -> str:
    filled = width * progress // 100
    return "#" * filled + "-" * (width - filled)


def _follow(client: httpx.Client, job_id: str, started: float, until: str) -> dict[str, Any]:
    job: dict[str, Any] = {}
    with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", params={"until": until}, timeout=None) as events:
        for event in events.iter_sse():
            if event.event != "job" or not event.data:
                continue  # keep-alives
            job = json.loads(event.data)
            print(f"  {time.monotonic() - started:6.1f}s  {job['stage']:<10} [{_bar(job['progress'])}] "
                  f"{job['progress']:3d}%", flush=True)
    return job


def run_example(base_url: str, data_dir: Path, settings: dict[str, Any], minter_key: str | None = None,
                wallet: str | None = None) -> int:
    started = time.monotonic()
    minter = Account.from_key(minter_key) if minter_key else None
    wallet = wallet or (minter.address if minter else EXAMPLE_WALLET)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        reply = client.post("/v1/jobs", json={"settings": settings, "wallet": wallet})
        if reply.status_code != 202:
            print(f"submission refused ({reply.status_code}): {reply.text}")
            return 1
        job_id, claim_token = reply.json()["job_id"], reply.json().get("claim_token")
        print(f"submitted job {job_id} for wallet {wallet} with settings {json.dumps(settings)}")
        job = _follow(client, job_id, started, "pinned")
        if job.get("stage") != "pinned":
            print(f"job ended {job.get('stage')}: {job.get('error')}")
            return 1
        _print_assets(base_url, data_dir, job, started)
        if job.get("mint") is None:
            print("\nno chain configured: the job is ready to mint but nothing mints it")
            return 0
        return _mint(client, job, minter, started, claim_token)


def _print_assets(base_url: str, data_dir: Path, job: dict[str, Any], started: float) -> None:
    store = LocalIpfsStore(data_dir / "ipfs")
    gif_cid = job["assets"]["image"].removeprefix("ipfs://")
    gif = store.get(gif_cid)
    print(f"\npinned in {time.monotonic() - started:.1f}s")
    print(f"token URI : {job['token_uri']}")
    print(f"metadata  : {base_url}/ipfs/{job['token_uri'].removeprefix('ipfs://')}")
    print(f"GIF       : {base_url}/ipfs/{gif_cid}")
    if gif is not None:
        print(f"GIF file  : {gif.path}")
    for kind in ("animation", "preview"):
        if job["assets"].get(kind):
            print(f"{kind:<10}: {base_url}/ipfs/{job['assets'][kind].removeprefix('ipfs://')}")


def _mint(client: httpx.Client, job: dict[str, Any], minter: Any, started: float, claim_token: str | None) -> int:
    job_id, mint = job["job_id"], job["mint"]
    chain = client.get("/v1/chain").json()
    if minter is not None:
        # What a wallet does with the job's ready transaction (eth_sendTransaction), from a dev account.
        w3 = Web3(Web3.HTTPProvider(chain["rpc_url"], request_kwargs={"timeout": 30}))
        tx = {**mint["tx"], "value": int(mint["tx"]["value"], 16), "from": minter.address,
              "chainId": mint["chain_id"], "nonce": w3.eth.get_transaction_count(minter.address, "pending"),
              "gasPrice": w3.eth.gas_price}
        tx["gas"] = w3.eth.estimate_gas({k: tx[k] for k in ("from", "to", "data", "value")})
        tx_hash = w3.eth.send_raw_transaction(minter.sign_transaction(tx).raw_transaction).to_0x_hex()
        print(f"\nmint sent from dev account {minter.address}: {tx_hash}")
        body: dict[str, Any] = {"tx_hash": tx_hash}
    else:
        print("\nasking the service to relay the mint (it pays the gas)")
        body = {"relay": True, "claim_token": claim_token}
    reported = time.monotonic()
    reply = client.post(f"/v1/jobs/{job_id}/mint", json=body)
    if reply.status_code not in (200, 202):
        print(f"mint refused ({reply.status_code}): {reply.text}")
        return 1
    job = client.get(f"/v1/jobs/{job_id}").json()
    if job["stage"] != "minted":
        job = _follow(client, job_id, started, "minted")
    if job.get("stage") != "minted":
        print(f"job ended {job.get('stage')}: {job.get('error')}")
        return 1
    print(f"\nminted {time.monotonic() - reported:.2f}s after the report ({time.monotonic() - started:.1f}s in all)")
    print(f"chain     : {chain['chain_id']} ({chain['rpc_url']}), collection {chain['contract']}")
    print(f"token id  : {job['token_id']}")
    print(f"tx hash   : {job['tx_hash']} (block {job['block']})")
    print(f"token URI : {job['token_uri']}")
    print(f"owner     : {job['wallet']}")
    return 0
