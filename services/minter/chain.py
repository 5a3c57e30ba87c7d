"""The minter on chain: the collection's EIP-712 mint vouchers (signed here, nowhere else), and the check of a
reported mint transaction by the collection's own events.

The signer key lives only in `_signer` (an eth_account LocalAccount): never logged, never in a response.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from hexbytes import HexBytes
from web3 import AsyncWeb3, Web3
from web3.exceptions import ContractCustomError, TransactionNotFound, Web3Exception
from web3.logs import DISCARD
from web3.providers.rpc import AsyncHTTPProvider

from minter.settings import MinterSettings
from mintpipe.chain import Domain, Voucher, artifact, bytes32_to_job_id, job_id_to_bytes32, sign_voucher
from mintpipe.dev_keys import refuse_dev_keys
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import jobs_pb2

log = get_logger("minter.chain")
# Signing and encoding a mint object takes ~4 ms at rest here and up to 28 ms with the cores busy (bench/chain.py);
# a voucher is the same for every read within a deadline step, so the last few thousand are kept.
MINT_CACHE = 4096
TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


class ChainConfigError(Exception):
    """The chain settings cannot work (names the variable); the minter refuses to start."""


class MintProblem(Exception):
    """A mint that cannot go on: an HTTP status for the bridge, a code and a sentence a person can act on."""

    def __init__(self, status: int, code: str, message: str, field: str | None = "tx_hash") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass(frozen=True)
class JobRef:
    """What the minter needs of a job: status sends it with each request (the minter keeps no job store)."""

    job_id: str
    wallet: str
    token_uri: str


@dataclass(frozen=True)
class SeenMint:
    """A VoucherRedeemed event of the collection: job `job_id` became `token_id`, owned by `wallet`."""

    job_id: str
    token_id: int
    wallet: str
    tx_hash: str
    block: int
    block_hash: str


class Chain:
    def __init__(self, settings: MinterSettings) -> None:
        self.settings = settings
        self.address = Web3.to_checksum_address(settings.chain_contract)
        self.confirmations = settings.chain_confirmations
        self.w3 = AsyncWeb3(AsyncHTTPProvider(settings.chain_rpc_url, request_kwargs={"timeout": 15}))
        # web3's validation middleware asks the node for the chain id around every eth_estimateGas and
        # eth_call, uncached (2 of a relay's 8 calls, bench/chain.py); we set chainId ourselves on what we sign.
        with contextlib.suppress(ValueError, KeyError):
            self.w3.middleware_onion.remove("validation")
        self.contract = self.w3.eth.contract(address=self.address, abi=artifact()["abi"])
        self.codec = Web3().eth.contract(address=self.address, abi=artifact()["abi"])  # offline encode/decode
        self.redeemed_topic = HexBytes(self.codec.events.VoucherRedeemed().topic)
        self._signer = Account.from_key(settings.chain_signer_key.get_secret_value())
        self.signer_address = self._signer.address
        self.chain_id = 0
        self.domain: Domain | None = None
        # How far the chain's clock runs ahead of ours (never behind: then ours is used). Vouchers are checked
        # against block.timestamp, so deadlines count from the chain's time (kept fresh by the watcher).
        self.clock_ahead = 0.0
        self._mints: OrderedDict[Voucher, jobs_pb2.MintReady] = OrderedDict()
        self._errors = {Web3.keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})")[:4]: e
                        for e in artifact()["abi"] if e["type"] == "error"}

    async def connect(self) -> None:
        """Reads the chain id and the collection's EIP-712 domain; refuses what cannot work."""
        try:
            self.chain_id = await self.w3.eth.chain_id
            code = await self.w3.eth.get_code(self.address)
        except (Web3Exception, OSError) as exc:
            raise ChainConfigError(f"MINTPIPE_CHAIN_RPC_URL: the node does not answer ({type(exc).__name__})") from None
        keys = {"MINTPIPE_CHAIN_SIGNER_KEY": self.settings.chain_signer_key.get_secret_value(),
                "MINTPIPE_CHAIN_RELAYER_KEY": (self.settings.chain_relayer_key.get_secret_value()
                                               if self.settings.chain_relayer_key else None)}
        refusal = None if self.settings.chain_local_dev else refuse_dev_keys(self.chain_id, keys)
        if refusal:
            raise ChainConfigError(refusal)
        if not code:
            raise ChainConfigError(f"MINTPIPE_CHAIN_CONTRACT: no contract code at {self.address} on chain "
                                   f"{self.chain_id}")
        try:
            _fields, name, _version, chain_id, verifying, _salt, _ext = \
                await self.contract.functions.eip712Domain().call()
            is_signer = await self.contract.functions.hasRole(
                await self.contract.functions.SIGNER_ROLE().call(), self.signer_address).call()
        except (Web3Exception, ValueError) as exc:
            raise ChainConfigError(f"MINTPIPE_CHAIN_CONTRACT: {self.address} is not a MintpipeCollection "
                                   f"({type(exc).__name__})") from None
        if not is_signer:
            raise ChainConfigError(f"MINTPIPE_CHAIN_SIGNER_KEY: its address {self.signer_address} is not a signer "
                                   f"of the collection {self.address}")
        self.domain = Domain(name, chain_id, verifying)
        self.saw_block(int((await self.w3.eth.get_block("latest"))["timestamp"]))
        log.info("chain ready", chain_id=self.chain_id, contract=self.address, signer=self.signer_address,
                 confirmations=self.confirmations)

    async def close(self) -> None:
        """Closes the node's HTTP session."""
        disconnect = getattr(self.w3.provider, "disconnect", None)
        if disconnect is not None:
            await disconnect()

    def abi_json(self) -> str:
        return json.dumps(artifact()["abi"], separators=(",", ":"))

    # --- vouchers -----------------------------------------------------------------------------------------
    def saw_block(self, timestamp: int) -> None:
        self.clock_ahead = max(timestamp - time.time(), 0.0)

    def deadline(self, now: float | None = None) -> int:
        """Deadlines step by half the validity, so every read within a step gets the same voucher (and the
        same signature: ECDSA here is deterministic), and each still has at least half its validity left."""
        step = max(self.settings.chain_voucher_seconds // 2, 1)
        now = time.time() + self.clock_ahead if now is None else now
        return (int(now) // step + 2) * step

    def mint_ready(self, job: JobRef, deadline: int | None = None) -> jobs_pb2.MintReady:
        """What a wallet needs to mint a pinned job: the voucher, its signature and the ready transaction."""
        assert self.domain is not None, "connect() first"
        voucher = Voucher(to=Web3.to_checksum_address(job.wallet), token_uri=job.token_uri, job_id=job.job_id,
                          deadline=deadline or self.deadline())
        cached = self._mints.get(voucher)
        if cached is not None:
            self._mints.move_to_end(voucher)
            return cached
        signature = sign_voucher(self._signer.key, self.domain, voucher)
        data = self.codec.encode_abi("mint", args=list(voucher.mint_args(signature)))
        ready = jobs_pb2.MintReady(
            chain_id=self.chain_id, contract=self.address,
            voucher=jobs_pb2.MintVoucher(to=voucher.to, token_uri=voucher.token_uri,
                                         job_id="0x" + job_id_to_bytes32(voucher.job_id).hex(),
                                         deadline=voucher.deadline),
            signature="0x" + signature.hex(), tx=jobs_pb2.MintTx(to=self.address, data=data, value="0x0"))
        self._mints[voucher] = ready
        if len(self._mints) > MINT_CACHE:
            self._mints.popitem(last=False)
        return ready

    # --- the collection's own state and events ------------------------------------------------------------
    async def token_of_job(self, job_id: str, block: int | str = "latest") -> int:
        """The token the contract holds for a job (0: none): the contract's word, whatever logs say."""
        return int(await self.contract.functions.tokenOfJob(job_id_to_bytes32(job_id)).call(block_identifier=block))

    def redeemed(self, entries: list[Any]) -> list[SeenMint]:
        """The VoucherRedeemed events among `entries` (logs of any contract), as mints."""
        seen = []
        for entry in entries:
            if entry["address"].lower() != self.address.lower() or not entry["topics"] or \
                    HexBytes(entry["topics"][0]) != self.redeemed_topic:
                continue
            args = self.codec.events.VoucherRedeemed().process_log(entry)["args"]
            job_id = bytes32_to_job_id(args["jobId"])
            if job_id is None:
                continue
            seen.append(SeenMint(job_id, int(args["tokenId"]), args["to"], _hex(entry["transactionHash"]),
                                 int(entry["blockNumber"]), _hex(entry["blockHash"])))
        return seen

    # --- verifying a reported mint ------------------------------------------------------------------------
    async def verify(self, job: JobRef, tx_hash: str) -> tuple[str, SeenMint | None]:
        """Checks a reported mint transaction of this job by the collection's own events, so a mint sent through
        a smart-contract wallet (Safe, ERC-4337: `to` is the wallet or the entry point) counts as well.
        ("pending", None) while it is not mined; ("mined", mint) once it is; MintProblem when it does not check out.
        """
        if not TX_HASH.fullmatch(tx_hash):
            raise MintProblem(400, "invalid_argument", "tx_hash: a 0x-prefixed 32-byte hex transaction hash")
        try:
            receipt = await self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            try:
                await self.w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                raise MintProblem(404, "not_found", f"no transaction {tx_hash} on chain {self.chain_id}: was it "
                                  "sent on another network, or dropped?") from None
            return "pending", None
        if receipt["status"] != 1:
            raise MintProblem(422, "reverted", await self._revert_reason(receipt))
        mints = self.redeemed(list(receipt["logs"]))
        if not mints:
            raise MintProblem(422, "no_mint", f"contract: this transaction minted no token of the collection "
                              f"{self.address} (wrong network or wrong contract?)", "contract")
        ours = [m for m in mints if m.job_id == job.job_id]
        if not ours:
            others = ", ".join(m.job_id for m in mints)
            raise MintProblem(422, "job_mismatch", f"job_id: this transaction minted the token of job {others}, "
                              f"not of job {job.job_id}", "job_id")
        mint = ours[0]
        transfers = {int(t["args"]["tokenId"]): t["args"]["to"]
                     for t in self.codec.events.Transfer().process_receipt(
                         {**receipt, "logs": [e for e in receipt["logs"]
                                              if e["address"].lower() == self.address.lower()]}, errors=DISCARD)}
        owner = transfers.get(mint.token_id, mint.wallet)
        if owner.lower() != job.wallet.lower():
            raise MintProblem(422, "wallet_mismatch", f"wallet: token {mint.token_id} went to {owner}, not the "
                              f"job's wallet {job.wallet}", "wallet")
        # The URI cannot change once minted: read it at the latest block (a node without archive state refuses
        # reads ~128 blocks back, so a past block would fail an old report).
        uri = await self.contract.functions.tokenURI(mint.token_id).call()
        if uri != job.token_uri:
            raise MintProblem(422, "token_uri_mismatch", f"token_uri: token {mint.token_id} has {uri!r}, not this "
                              f"job's {job.token_uri!r}", "token_uri")
        return "mined", mint

    async def _revert_reason(self, receipt: Any) -> str:
        """Why a mint reverted, replayed on the block before it, as a sentence a person can act on."""
        try:
            tx = await self.w3.eth.get_transaction(receipt["transactionHash"])
            await self.w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]},
                                   receipt["blockNumber"] - 1)
        except ContractCustomError as exc:
            return self.explain(HexBytes(str(exc.data)))
        except (Web3Exception, ValueError):
            pass
        return "tx_hash: the transaction reverted: nothing was minted"

    def error_name(self, data: bytes) -> str:
        entry = self._errors.get(bytes(data[:4]))
        return entry["name"] if entry else ""

    def explain(self, data: bytes) -> str:
        name = self.error_name(data)
        if name == "VoucherExpired":
            return "tx_hash: the voucher expired before the transaction was mined: read the job again for a " \
                   "fresh voucher and send that"
        if name == "JobAlreadyMinted":
            token = int.from_bytes(bytes(data[36:68]), "big")
            return f"tx_hash: the voucher's job is already minted (token id {token})"
        if name == "InvalidVoucherSignature":
            return "tx_hash: the contract refused the voucher's signature: it was not signed by this service for " \
                   "this network and contract (wrong network?)"
        return "tx_hash: the transaction reverted: nothing was minted"


def _hex(value: Any) -> str:
    return value.to_0x_hex() if isinstance(value, HexBytes) else str(value)
