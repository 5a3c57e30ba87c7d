"""The launcher's chain: a local anvil with the collection deployed (the embedded default), or the chain the
environment names, checked before anything starts.

Without MINTPIPE_CHAIN_RPC_URL: anvil (npm @foundry-rs/anvil) on a free port, its state kept in
<data>/chain/ so tokens outlive a restart, the collection deployed once, and anvil's well-known dev keys as
signer and relayer (the log says so: never for real value). With it: MINTPIPE_CHAIN_CONTRACT and
MINTPIPE_CHAIN_SIGNER_KEY are required and the address must hold code; otherwise the launcher refuses to
start, naming the variable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from web3 import Web3

from mintpipe.chain import Anvil, collection, deploy_collection
from mintpipe.runtime.log import get_logger

log = get_logger("launcher")


class ChainRefused(Exception):
    """The chain settings cannot work; the message names the variable."""


@dataclass
class LauncherChain:
    env: dict[str, str]  # what the minters get (the only processes given the keys)
    rpc_url: str
    contract: str
    anvil: Anvil | None = None
    dev_keys: list[str] = field(default_factory=list)  # funded dev accounts (local anvil only)

    def stop(self) -> None:
        if self.anvil is not None:
            self.anvil.stop()


def _env(name: str) -> str:
    return os.environ.get(f"MINTER_{name}") or os.environ.get(f"MINTPIPE_{name}") or ""


def start_chain(data_dir: Path) -> LauncherChain:
    rpc_url = _env("CHAIN_RPC_URL")
    if rpc_url:
        return _remote(rpc_url)
    return _local(data_dir / "chain")


def _remote(rpc_url: str) -> LauncherChain:
    contract = _env("CHAIN_CONTRACT")
    if not contract:
        raise ChainRefused("MINTPIPE_CHAIN_CONTRACT is required with MINTPIPE_CHAIN_RPC_URL (the collection's address)")
    if not _env("CHAIN_SIGNER_KEY"):
        raise ChainRefused("MINTPIPE_CHAIN_SIGNER_KEY is required with MINTPIPE_CHAIN_RPC_URL (the voucher signer)")
    if not Web3.is_address(contract):
        raise ChainRefused(f"MINTPIPE_CHAIN_CONTRACT: {contract!r} is not an address")
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 15}))
    try:
        chain_id, code = w3.eth.chain_id, w3.eth.get_code(Web3.to_checksum_address(contract))
    except Exception as exc:  # any transport error: the URL is what to fix
        raise ChainRefused(f"MINTPIPE_CHAIN_RPC_URL: the node does not answer ({type(exc).__name__})") from None
    if not code:
        raise ChainRefused(f"MINTPIPE_CHAIN_CONTRACT: no contract code at {contract} on chain {chain_id}")
    log.info("using the configured chain", chain_id=chain_id, contract=contract)
    return LauncherChain(env={}, rpc_url=rpc_url, contract=Web3.to_checksum_address(contract))


def _local(folder: Path) -> LauncherChain:
    anvil = Anvil(log_path=folder / "anvil.log", state_path=folder / "anvil-state.json").start()
    try:
        keys = anvil.private_keys
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
        deployment = folder / "deployment.json"
        address = json.loads(deployment.read_text())["contract"] if deployment.exists() else ""
        if not address or not w3.eth.get_code(address):
            address = deploy_collection(w3, keys[0], signer=Account.from_key(keys[1]).address, name="mintpipe",
                                        symbol="MINTPIPE")
            deployment.write_text(json.dumps({"contract": address, "chain_id": anvil.chain_id}) + "\n")
        assert collection(w3, address).functions.name().call() == "mintpipe"
    except BaseException:
        anvil.stop()
        raise
    log.warning("no MINTPIPE_CHAIN_RPC_URL: started a local anvil node and signs vouchers and relays mints with "
                "anvil's well-known dev keys (never use them for real value)", rpc_url=anvil.url,
                chain_id=anvil.chain_id, contract=address, signer=Account.from_key(keys[1]).address,
                relayer=Account.from_key(keys[2]).address)
    env = {"MINTPIPE_CHAIN_RPC_URL": anvil.url, "MINTPIPE_CHAIN_PUBLIC_RPC_URL": anvil.url,
           "MINTPIPE_CHAIN_CONTRACT": address, "MINTPIPE_CHAIN_SIGNER_KEY": keys[1],
           "MINTPIPE_CHAIN_RELAYER_KEY": keys[2], "MINTER_CHAIN_LOCAL_DEV": "true"}
    if not _env("CHAIN_CONFIRMATIONS"):
        env["MINTER_CHAIN_CONFIRMATIONS"] = "0"  # anvil mines a block per transaction and never reorgs by itself
    return LauncherChain(env=env, rpc_url=anvil.url, contract=address, anvil=anvil, dev_keys=keys[3:])
