"""Status on chain: signs a pinned job's EIP-712 mint voucher, builds its ready transaction, and verifies a
reported mint transaction with web3 (receipt, contract, Transfer to the job's wallet, tokenURI, job id).

The signer key lives only in `_signer` (an eth_account LocalAccount): never logged, never in a response.
"""

from __future__ import annotations

import copy
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

from mintpipe.chain import ZERO_ADDRESS, Domain, Voucher, artifact, bytes32_to_job_id, job_id_to_bytes32, sign_voucher
from mintpipe.log import get_logger
from mintpipe.v1 import jobs_pb2
from status.chain_store import ChainStore
from status.records import JobRecord
from status.settings import StatusSettings

log = get_logger("status.chain")
# Signing and encoding a mint object takes 4 ms at rest here and up to 28 ms with the cores busy (bench/chain.py:
# median 3.95 ms first read, 0.01 ms cached); a voucher is the same for every read within a deadline step, so
# the last few thousand are kept (a page of 100 pinned jobs would otherwise cost 0.4-2.8 s).
MINT_CACHE = 4096
TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


class ChainConfigError(Exception):
    """The chain settings cannot work (names the variable); the service refuses to start."""


class MintProblem(Exception):
    """A reported mint that does not check out: an HTTP status, a code and a sentence a person can act on."""

    def __init__(self, status: int, code: str, message: str, field: str | None = "tx_hash") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass(frozen=True)
class MintOutcome:
    state: str  # minted | confirming | pending
    tx_hash: str
    token_id: int | None = None
    block: int | None = None
    confirmations: int = 0
    record: JobRecord | None = None


class Chain:
    def __init__(self, settings: StatusSettings, store: ChainStore) -> None:
        assert settings.chain_rpc_url and settings.chain_contract and settings.chain_signer_key
        self.settings = settings
        self.store = store
        self.rpc_url = settings.chain_rpc_url
        self.public_rpc_url = settings.chain_public_rpc_url or settings.chain_rpc_url
        self.address = Web3.to_checksum_address(settings.chain_contract)
        self.confirmations = settings.chain_confirmations
        self.w3 = AsyncWeb3(AsyncHTTPProvider(self.rpc_url, request_kwargs={"timeout": 15}))
        self.contract = self.w3.eth.contract(address=self.address, abi=artifact()["abi"])
        self._codec = Web3().eth.contract(address=self.address, abi=artifact()["abi"])  # offline encode/decode
        self._signer = Account.from_key(settings.chain_signer_key.get_secret_value())
        self.signer_address = self._signer.address
        self.chain_id = 0
        self.domain: Domain | None = None
        self._mints: OrderedDict[Voucher, dict[str, Any]] = OrderedDict()

    async def connect(self) -> None:
        """Reads the chain id and the collection's EIP-712 domain; refuses what cannot work."""
        try:
            self.chain_id = await self.w3.eth.chain_id
            code = await self.w3.eth.get_code(self.address)
        except (Web3Exception, OSError) as exc:
            raise ChainConfigError(f"MINTPIPE_CHAIN_RPC_URL: the node does not answer ({type(exc).__name__})") from None
        if not code:
            raise ChainConfigError(f"MINTPIPE_CHAIN_CONTRACT: no contract code at {self.address} on chain "
                                   f"{self.chain_id}")
        try:
            domain = await self.contract.functions.eip712Domain().call()
            _fields, name, _version, chain_id, verifying, _salt, _ext = domain
            is_signer = await self.contract.functions.hasRole(
                await self.contract.functions.SIGNER_ROLE().call(), self.signer_address).call()
        except (Web3Exception, ValueError) as exc:
            raise ChainConfigError(f"MINTPIPE_CHAIN_CONTRACT: {self.address} is not a MintpipeCollection "
                                   f"({type(exc).__name__})") from None
        if not is_signer:
            raise ChainConfigError(f"MINTPIPE_CHAIN_SIGNER_KEY: its address {self.signer_address} is not a signer "
                                   f"of the collection {self.address}")
        self.domain = Domain(name, chain_id, verifying)
        log.info("chain ready", chain_id=self.chain_id, contract=self.address, signer=self.signer_address,
                 confirmations=self.confirmations)

    def info(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "contract": self.address, "rpc_url": self.public_rpc_url,
                "abi": artifact()["abi"]}

    # --- vouchers -----------------------------------------------------------------------------------------
    def deadline(self, now: float | None = None) -> int:
        """Deadlines step by half the validity, so every read within a step gets the same voucher (and the
        same signature: ECDSA here is deterministic), and each still has at least half its validity left."""
        step = max(self.settings.chain_voucher_seconds // 2, 1)
        now = time.time() if now is None else now
        return (int(now) // step + 2) * step

    def voucher(self, record: JobRecord) -> Voucher:
        return Voucher(to=record.wallet, token_uri=record.state.token_uri, job_id=record.job_id,
                       deadline=self.deadline())

    def mint_object(self, record: JobRecord) -> dict[str, Any] | None:
        """What a wallet needs to mint a pinned job; None for any other stage."""
        if record.stage != jobs_pb2.STAGE_PINNED or not record.state.token_uri or self.domain is None:
            return None
        voucher = self.voucher(record)
        cached = self._mints.get(voucher)
        if cached is not None:
            self._mints.move_to_end(voucher)
            return copy.deepcopy(cached)
        signature = sign_voucher(self._signer.key, self.domain, voucher)
        data = self._codec.encode_abi("mint", args=list(voucher.mint_args(signature)))
        mint = {
            "chain_id": self.chain_id,
            "contract": self.address,
            "voucher": {"to": voucher.to, "token_uri": voucher.token_uri,
                        "job_id": "0x" + job_id_to_bytes32(voucher.job_id).hex(), "deadline": voucher.deadline},
            "signature": "0x" + signature.hex(),
            "tx": {"to": self.address, "data": data, "value": "0x0"},
        }
        self._mints[voucher] = mint
        if len(self._mints) > MINT_CACHE:
            self._mints.popitem(last=False)
        return copy.deepcopy(mint)

    def mint_proto(self, record: JobRecord) -> jobs_pb2.MintReady | None:
        mint = self.mint_object(record)
        if mint is None:
            return None
        return jobs_pb2.MintReady(chain_id=mint["chain_id"], contract=mint["contract"],
                                  voucher=jobs_pb2.MintVoucher(**mint["voucher"]), signature=mint["signature"],
                                  tx=jobs_pb2.MintTx(**mint["tx"]))

    # --- verifying a reported mint ------------------------------------------------------------------------
    async def verify(self, record: JobRecord, tx_hash: str) -> MintOutcome:
        """Checks a mint transaction for this job; records it and, once confirmed, marks the job minted."""
        if not TX_HASH.fullmatch(tx_hash):
            raise MintProblem(400, "invalid_argument", "tx_hash: a 0x-prefixed 32-byte hex transaction hash")
        tx_hash = tx_hash.lower()
        known = await self.store.mint(record.job_id)
        if known is not None and known.tx_hash != tx_hash:
            raise MintProblem(409, "already_minted", f"this job is already minted as token {known.token_id} "
                              f"(transaction {known.tx_hash})")
        if record.stage not in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_MINTED):
            raise MintProblem(409, "not_pinned", f"the job is {_stage(record)}, not pinned yet: nothing to mint",
                              "job_id")
        try:
            receipt = await self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            try:
                await self.w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                raise MintProblem(404, "not_found", f"no transaction {tx_hash} on chain {self.chain_id}: was it "
                                  "sent on another network, or dropped?") from None
            return MintOutcome("pending", tx_hash)
        if receipt["status"] != 1:
            raise MintProblem(422, "reverted", await self._revert_reason(receipt))
        if (receipt.get("to") or "").lower() != self.address.lower():
            raise MintProblem(422, "wrong_contract", f"contract: the transaction went to {receipt.get('to')}, not "
                              f"the collection {self.address} (wrong network or wrong contract?)", "contract")
        token_id = self._check_logs(record, receipt)
        uri = await self.contract.functions.tokenURI(token_id).call(block_identifier=receipt["blockNumber"])
        if uri != record.state.token_uri:
            raise MintProblem(422, "token_uri_mismatch", f"token_uri: token {token_id} has {uri!r}, not this job's "
                              f"{record.state.token_uri!r}", "token_uri")
        block = receipt["blockNumber"]
        await self.store.record(record.job_id, token_id, tx_hash, block, _hex(receipt["blockHash"]))
        return await self.settle(record.job_id, token_id, tx_hash, block)

    async def settle(self, job_id: str, token_id: int, tx_hash: str, block: int) -> MintOutcome:
        """Confirms the mint when it has enough blocks on top of it."""
        confirmations = max(await self.w3.eth.block_number - block, 0)
        if confirmations < self.confirmations:
            return MintOutcome("confirming", tx_hash, token_id, block, confirmations)
        changed = await self.store.confirm(job_id)
        return MintOutcome("minted", tx_hash, token_id, block, confirmations, changed)

    def _check_logs(self, record: JobRecord, receipt: Any) -> int:
        mine = [log_ for log_ in receipt["logs"] if log_["address"].lower() == self.address.lower()]
        receipt_of_ours = {**receipt, "logs": mine}
        redeemed = self._codec.events.VoucherRedeemed().process_receipt(receipt_of_ours, errors=DISCARD)
        transfers = [t["args"] for t in self._codec.events.Transfer().process_receipt(receipt_of_ours, errors=DISCARD)
                     if t["args"]["from"] == ZERO_ADDRESS]
        if not redeemed or not transfers:
            raise MintProblem(422, "no_mint", "tx_hash: this transaction minted no token of the collection")
        ours = [r["args"] for r in redeemed if r["args"]["jobId"] == job_id_to_bytes32(record.job_id)]
        if not ours:
            others = ", ".join(bytes32_to_job_id(r["args"]["jobId"]) or r["args"]["jobId"].hex() for r in redeemed)
            raise MintProblem(422, "job_mismatch", f"job_id: this transaction minted the token of job {others}, "
                              f"not of job {record.job_id}", "job_id")
        token_id = ours[0]["tokenId"]
        owner = next((t["to"] for t in transfers if t["tokenId"] == token_id), None)
        if owner is None or owner.lower() != record.wallet.lower():
            raise MintProblem(422, "wallet_mismatch", f"wallet: token {token_id} went to {owner}, not the job's "
                              f"wallet {record.wallet}", "wallet")
        return token_id

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

    def explain(self, data: bytes) -> str:
        errors = {Web3.keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})")[:4]: e
                  for e in artifact()["abi"] if e["type"] == "error"}
        entry = errors.get(bytes(data[:4]))
        name = entry["name"] if entry else ""
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


def _stage(record: JobRecord) -> str:
    from mintpipe.events import stage_name

    return stage_name(record.stage)
