"""The compose file's chain: its dev chain by default (anvil in a container, the collection deployed once), or the
chain the environment names.

  python -m launcher.deploy_cli deploy-chain         the one-shot `chain-deploy` service
  python -m launcher.deploy_cli minter-env -- CMD...  the minter's entrypoint: the dev chain's settings, then CMD

Without MINTPIPE_CHAIN_RPC_URL (the default): `deploy-chain` waits for the dev node (MINTPIPE_DEV_CHAIN_URL,
http://anvil:8545), refuses any chain but a local dev one (31337/1337), and deploys the collection from anvil's
first dev account, once: its first transaction, so the collection's address is fixed by that account and nonce 0
(0x5FbDB2315678afecb367f032d93F642f64180aa3) and nothing needs to carry it from one container to another (no
volume is shared between services). Run again, it finds the code there and leaves it. `minter-env` then gives the
minter that node, that address, anvil's second and third dev keys as signer and relayer (as `mintpipe up` does),
MINTER_CHAIN_LOCAL_DEV=true and no confirmations to wait for (anvil mines a block per transaction).

With MINTPIPE_CHAIN_RPC_URL (e.g. from an .env beside docker-compose.yml): `deploy-chain` deploys nothing and only
checks that the node answers and MINTPIPE_CHAIN_CONTRACT holds code there (exit 2 naming the variable otherwise);
`minter-env` passes the environment on as given: no dev key and no dev default is ever mixed with a real chain.
Setting a contract or a key without the RPC URL is refused (exit 2), rather than quietly meaning the dev chain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping

DEV_MNEMONIC = "test test test test test test test test test test test junk"  # anvil's; public, never for value
DEV_CHAIN_URL = "http://anvil:8545"
CHAIN_VARS = ("CHAIN_RPC_URL", "CHAIN_PUBLIC_RPC_URL", "CHAIN_CONTRACT", "CHAIN_SIGNER_KEY", "CHAIN_RELAYER_KEY",
              "CHAIN_CONFIRMATIONS", "CHAIN_LOCAL_DEV")


class Refused(Exception):
    """The settings cannot work; the message names the variable."""


def dev_keys(count: int = 10) -> list[str]:
    """anvil's well-known dev keys (m/44'/60'/0'/0/i of its public mnemonic): [0] deploys, [1] signs vouchers,
    [2] relays, [3:] are free for wallets."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.to_0x_hex()
            for i in range(count)]


def create_address(sender: str, nonce: int) -> str:
    """The address of the contract `sender` creates with its transaction number `nonce` (CREATE)."""
    import rlp
    from web3 import Web3

    return Web3.to_checksum_address(Web3.keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:])


def dev_collection_address() -> str:
    from eth_account import Account

    return create_address(Account.from_key(dev_keys(1)[0]).address, 0)


def _get(env: Mapping[str, str], name: str) -> str:
    """MINTER_<name> or MINTPIPE_<name> (the minter reads both); compose passes an unset variable as ""."""
    return env.get(f"MINTER_{name}") or env.get(f"MINTPIPE_{name}") or ""


def _connect(url: str, wait_seconds: float, variable: str):  # -> Web3
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 15}))
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            w3.eth.chain_id  # noqa: B018 (asks the node)
            return w3
        except Exception as exc:  # any transport error: wait for the node, then name the URL
            if time.monotonic() >= deadline:
                raise Refused(f"{variable}: the node does not answer ({type(exc).__name__})") from None
            time.sleep(1)


def deploy_chain(env: Mapping[str, str], wait_seconds: float = 60) -> dict[str, object]:
    """Deploys the dev chain's collection once (or checks the configured chain); returns what it found."""
    from web3 import Web3

    from mintpipe.chain import collection, deploy_collection
    from mintpipe.dev_keys import LOCAL_CHAIN_IDS

    rpc_url = _get(env, "CHAIN_RPC_URL")
    if rpc_url:
        contract = _get(env, "CHAIN_CONTRACT")
        if not contract:
            raise Refused("MINTPIPE_CHAIN_CONTRACT is required with MINTPIPE_CHAIN_RPC_URL (the collection's address)")
        if not Web3.is_address(contract):
            raise Refused(f"MINTPIPE_CHAIN_CONTRACT: {contract!r} is not an address")
        w3 = _connect(rpc_url, wait_seconds, "MINTPIPE_CHAIN_RPC_URL")
        chain_id = w3.eth.chain_id
        if not w3.eth.get_code(Web3.to_checksum_address(contract)):
            raise Refused(f"MINTPIPE_CHAIN_CONTRACT: no contract code at {contract} on chain {chain_id}")
        return {"chain": "configured", "chain_id": chain_id, "contract": Web3.to_checksum_address(contract),
                "deployed": False}

    from eth_account import Account

    w3 = _connect(env.get("MINTPIPE_DEV_CHAIN_URL") or DEV_CHAIN_URL, wait_seconds, "MINTPIPE_DEV_CHAIN_URL")
    chain_id = w3.eth.chain_id
    if chain_id not in LOCAL_CHAIN_IDS:
        raise Refused(f"MINTPIPE_DEV_CHAIN_URL: chain {chain_id} is not a local dev chain (31337/1337): the dev "
                      "chain's collection is deployed with anvil's well-known keys only there")
    keys = dev_keys(3)
    deployer, signer = Account.from_key(keys[0]).address, Account.from_key(keys[1]).address
    address = create_address(deployer, 0)
    deployed = False
    if not w3.eth.get_code(address):
        sent = w3.eth.get_transaction_count(deployer)
        if sent:
            raise Refused(f"MINTPIPE_DEV_CHAIN_URL: the dev deployer {deployer} has sent {sent} transaction(s) but "
                          f"there is no collection at {address}: this chain's state is not the dev chain's "
                          "(`docker compose down -v` starts it afresh)")
        made = deploy_collection(w3, keys[0], signer=signer, name="mintpipe", symbol="MINTPIPE")
        if made != address:  # cannot happen: a CREATE address is the sender's and the nonce's
            raise Refused(f"MINTPIPE_DEV_CHAIN_URL: the collection landed at {made}, not {address}")
        deployed = True
    token = collection(w3, address)
    if token.functions.name().call() != "mintpipe" or not token.functions.hasRole(
            token.functions.SIGNER_ROLE().call(), signer).call():
        raise Refused(f"MINTPIPE_DEV_CHAIN_URL: the contract at {address} is not the dev chain's collection")
    return {"chain": "dev", "chain_id": chain_id, "contract": address, "deployed": deployed}


def minter_env(env: Mapping[str, str]) -> dict[str, str]:
    """The minter's environment: the given chain as is, or the dev chain's settings."""
    out = {k: v for k, v in env.items()
           if not (v == "" and k.removeprefix("MINTER_").removeprefix("MINTPIPE_") in CHAIN_VARS)}
    if _get(out, "CHAIN_RPC_URL"):
        return out
    for name in ("CHAIN_CONTRACT", "CHAIN_SIGNER_KEY", "CHAIN_RELAYER_KEY"):
        if _get(out, name):
            raise Refused(f"MINTPIPE_CHAIN_RPC_URL is required with MINTPIPE_{name} (without it the minter would "
                          "use the dev chain and anvil's dev keys, not yours)")
    keys = dev_keys(3)
    out.update({"MINTPIPE_CHAIN_RPC_URL": env.get("MINTPIPE_DEV_CHAIN_URL") or DEV_CHAIN_URL,
                "MINTPIPE_CHAIN_CONTRACT": dev_collection_address(), "MINTPIPE_CHAIN_SIGNER_KEY": keys[1],
                "MINTPIPE_CHAIN_RELAYER_KEY": keys[2], "MINTER_CHAIN_LOCAL_DEV": "true"})
    if not _get(out, "CHAIN_PUBLIC_RPC_URL") and env.get("MINTPIPE_DEV_CHAIN_PUBLIC_URL"):
        out["MINTPIPE_CHAIN_PUBLIC_RPC_URL"] = env["MINTPIPE_DEV_CHAIN_PUBLIC_URL"]
    if not _get(out, "CHAIN_CONFIRMATIONS"):
        out["MINTER_CHAIN_CONFIRMATIONS"] = "0"  # anvil mines a block per transaction and never reorgs by itself
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launcher.deploy_cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    deploy = sub.add_parser("deploy-chain", help="deploy the dev chain's collection once, or check the given chain")
    deploy.add_argument("--wait", type=float, default=60, help="seconds to wait for the node (default 60)")
    run = sub.add_parser("minter-env", help="exec CMD with the minter's chain settings (the dev chain's by default)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- python -m minter")
    args = parser.parse_args(argv)
    try:
        if args.command == "deploy-chain":
            print(json.dumps(deploy_chain(os.environ, args.wait)), flush=True)
            return 0
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            parser.error("minter-env: the command to run is missing (-- python -m minter)")
        env = minter_env(os.environ)
    except Refused as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    if env.get("MINTER_CHAIN_LOCAL_DEV") == "true" and not _get(os.environ, "CHAIN_RPC_URL"):
        print(f"minter-env: no MINTPIPE_CHAIN_RPC_URL: the dev chain at {env['MINTPIPE_CHAIN_RPC_URL']}, collection "
              f"{env['MINTPIPE_CHAIN_CONTRACT']}, anvil's well-known dev keys as signer and relayer (never for real "
              "value)", file=sys.stderr, flush=True)
    os.execvpe(cmd[0], cmd, env)  # the minter becomes this process: SIGTERM reaches it, its exit code is ours
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
