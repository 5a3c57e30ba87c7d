"""A real chain for tests: anvil on a free port with the collection deployed.

    with running_chain() as chain:          # or the `chain` fixture (tests/conftest.py), one per test module
        chain.w3, chain.contract, chain.address, chain.chain_id
        chain.signer_key                    # the key the contract trusts for vouchers (anvil account 1)
        chain.deployer_key                  # admin of the contract (anvil account 0)
        chain.relayer_key                   # for the service's relayed mints (anvil account 2)
        chain.collector_keys                # funded accounts to mint from (anvil accounts 3-9)
        chain.voucher(job_id, to, uri) / chain.sign(voucher) / chain.mint(voucher, sig, sender_key)
        chain.snapshot() / chain.revert(snap_id) / chain.mine(n)
        chain.env()                         # STATUS_/MINTPIPE_ variables pointing a status service at it

anvil starts within a bounded time (an error naming its log otherwise) and is killed at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from mintpipe.chain import Anvil, Domain, Voucher, collection, deploy_collection, sign_voucher

COLLECTION_NAME = "mintpipe test"


@dataclass
class TestChain:
    __test__ = False  # not a test class, whatever its name

    anvil: Anvil
    w3: Web3
    address: str
    contract: Any
    deployer_key: str
    signer_key: str
    relayer_key: str
    collector_keys: list[str]

    @property
    def chain_id(self) -> int:
        return self.anvil.chain_id

    @property
    def url(self) -> str:
        return self.anvil.url

    @property
    def domain(self) -> Domain:
        return Domain(COLLECTION_NAME, self.chain_id, self.address)

    def address_of(self, key: str) -> str:
        return Account.from_key(key).address

    def voucher(self, job_id: str, to: str, token_uri: str, deadline: int | None = None) -> Voucher:
        return Voucher(to=to, token_uri=token_uri, job_id=job_id,
                       deadline=deadline if deadline is not None else int(time.time()) + 3600)

    def sign(self, voucher: Voucher, key: str | None = None, domain: Domain | None = None) -> bytes:
        return sign_voucher(key or self.signer_key, domain or self.domain, voucher)

    def send(self, call: Any, sender_key: str, *, wait: bool = True) -> Any:
        """Send a contract call as a signed transaction; the receipt (wait) or the tx hash."""
        sender = Account.from_key(sender_key)
        tx = call.build_transaction({"from": sender.address, "nonce": self.w3.eth.get_transaction_count(
            sender.address, "pending"), "gas": 500_000})
        tx_hash = self.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, 30) if wait else tx_hash

    def mint(self, voucher: Voucher, signature: bytes, sender_key: str | None = None, *, wait: bool = True) -> Any:
        return self.send(self.contract.functions.mint(*voucher.mint_args(signature)),
                         sender_key or self.collector_keys[0], wait=wait)

    def rpc(self, method: str, *params: Any) -> Any:
        return self.w3.provider.make_request(method, list(params))["result"]

    def snapshot(self) -> str:
        return self.rpc("evm_snapshot")

    def revert(self, snapshot_id: str) -> bool:
        return self.rpc("evm_revert", snapshot_id)

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def env(self, *, confirmations: int = 0, relay: bool = True) -> dict[str, str]:
        """Environment for a minter (or the launcher) using this chain; anvil's dev keys, allowed on its 31337."""
        env = {"MINTPIPE_CHAIN_RPC_URL": self.url, "MINTPIPE_CHAIN_PUBLIC_RPC_URL": self.url,
               "MINTPIPE_CHAIN_CONTRACT": self.address, "MINTPIPE_CHAIN_SIGNER_KEY": self.signer_key,
               "MINTER_CHAIN_CONFIRMATIONS": str(confirmations)}
        if relay:
            env["MINTPIPE_CHAIN_RELAYER_KEY"] = self.relayer_key
        return env


@contextmanager
def running_chain(log_dir: Path | None = None, *, block_time: float | None = None) -> Iterator[TestChain]:
    """anvil on a free port with the collection deployed; stopped afterwards."""
    anvil = Anvil(block_time=block_time, log_path=(log_dir / "anvil.log") if log_dir else None)
    with anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
        keys = anvil.private_keys
        signer = Account.from_key(keys[1]).address
        address = deploy_collection(w3, keys[0], signer=signer, name=COLLECTION_NAME, symbol="MPT")
        yield TestChain(anvil=anvil, w3=w3, address=address, contract=collection(w3, address),
                        deployer_key=keys[0], signer_key=keys[1], relayer_key=keys[2], collector_keys=keys[3:])
