"""Relayed (gasless) mints: the service sends a pinned job's voucher from its relayer key and pays the gas; the
token still goes to the job's wallet (the contract mints to the voucher's `to`, whoever sends it).

One sender, one queue: sends are serialized by a lock, and each takes the next nonce (the larger of the node's
pending count and ours), so concurrent requests never collide or leave a gap. The signed transaction is stored
(relays table) before it is sent: a second request for the same job answers the first transaction, and a crash
between storing and sending is repaired by the loop, which re-sends a transaction the node does not know and
replaces one left unmined for `relay_stuck_seconds` with the same nonce and a fee 25 % higher (nodes want 10 %+),
never above the gas-price ceiling. Bounded by a per-wallet and an overall daily cap and that ceiling.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractCustomError, TransactionNotFound, Web3Exception

from mintpipe.log import get_logger
from mintpipe.v1 import jobs_pb2
from status.chain import Chain, MintProblem
from status.chain_store import ChainStore, Relay
from status.records import JobRecord
from status.settings import StatusSettings

log = get_logger("status.relayer")
GWEI = 10**9
DAY = 86400.0


class Relayer:
    def __init__(self, chain: Chain, chain_store: ChainStore, settings: StatusSettings) -> None:
        assert settings.chain_relayer_key is not None
        self.chain, self.chain_store, self.settings = chain, chain_store, settings
        self._account = Account.from_key(settings.chain_relayer_key.get_secret_value())
        self.address = self._account.address
        self.max_fee_cap = int(settings.relay_max_gas_price_gwei * GWEI)
        self.low_balance = Web3.to_wei(settings.relay_low_balance_eth, "ether")
        self.balance: int | None = None
        self._lock = asyncio.Lock()
        self._next_nonce: int | None = None

    @property
    def funded(self) -> bool:
        return self.balance is not None and self.balance >= self.low_balance

    async def refresh_balance(self) -> int:
        self.balance = await self.chain.w3.eth.get_balance(self.address)
        return self.balance

    async def relay(self, record: JobRecord) -> tuple[Relay, bool]:
        """The job's relayed transaction: (relay, False) if one was sent before, else (relay, True)."""
        existing = await self.chain_store.relay(record.job_id)
        if existing is not None:
            return existing, False
        if record.stage != jobs_pb2.STAGE_PINNED:
            raise MintProblem(409, "not_pinned", f"the job is not pinned (stage {record.stage}): nothing to relay",
                              "job_id")
        async with self._lock:
            existing = await self.chain_store.relay(record.job_id)  # another request won the race
            if existing is not None:
                return existing, False
            await self._check_caps(record.wallet)
            return await self._send_new(record), True

    async def _check_caps(self, wallet: str) -> None:
        since = time.time() - DAY
        if await self.chain_store.relays_since(since, wallet) >= self.settings.relay_per_wallet_daily:
            raise MintProblem(429, "relay_cap", f"wallet: {wallet} already had {self.settings.relay_per_wallet_daily} "
                              "relayed mints today; mint from a wallet (the job's `mint.tx`) or retry tomorrow",
                              "wallet")
        if await self.chain_store.relays_since(since) >= self.settings.relay_daily:
            raise MintProblem(429, "relay_cap", "relay: the service's daily relayed mints are used up; mint from a "
                              "wallet (the job's `mint.tx`) or retry tomorrow", "relay")

    async def _fees(self) -> tuple[int, int]:
        w3 = self.chain.w3
        block = await w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or await w3.eth.gas_price)
        tip = min(GWEI, self.max_fee_cap)
        if base + tip > self.max_fee_cap:
            raise MintProblem(503, "gas_too_high", f"relay: gas costs {base / GWEI:.1f} gwei, above the relayer's "
                              f"ceiling of {self.max_fee_cap / GWEI:g} gwei; retry later or mint from a wallet",
                              "relay")
        return min(2 * base + tip, self.max_fee_cap), tip

    async def _send_new(self, record: JobRecord) -> Relay:
        w3 = self.chain.w3
        mint = self.chain.mint_object(record)
        assert mint is not None
        call = {"from": self.address, "to": self.chain.address, "data": mint["tx"]["data"], "value": 0}
        try:
            gas = await w3.eth.estimate_gas(call)
        except ContractCustomError as exc:
            raise MintProblem(409, "refused", self.chain.explain(bytes.fromhex(str(exc.data)[2:]))) from None
        max_fee, tip = await self._fees()
        balance = await self.refresh_balance()
        if balance < gas * max_fee:
            raise MintProblem(503, "relayer_unfunded", "relay: the relayer cannot pay for gas right now; mint from "
                              "a wallet (the job's `mint.tx`)", "relay")
        pending = await w3.eth.get_transaction_count(self.address, "pending")
        stored = await self.chain_store.max_relay_nonce(self.address)
        nonce = max(pending, self._next_nonce or 0, (stored + 1) if stored is not None else 0)
        tx = {**call, "gas": int(gas * 1.2), "nonce": nonce, "chainId": self.chain.chain_id,
              "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2}
        signed = self._account.sign_transaction(tx)
        now = time.time()
        relay = Relay(job_id=record.job_id, wallet=record.wallet, sender=self.address, nonce=nonce,
                      tx_hash=signed.hash.to_0x_hex(), raw_tx=signed.raw_transaction.to_0x_hex(), max_fee=max_fee,
                      created_at=now, sent_at=now)
        await self.chain_store.add_relay(relay)  # stored first: idempotent even if the send below fails
        self._next_nonce = nonce + 1
        await self._broadcast(relay.raw_tx)
        log.info("relayed mint sent", job_id=record.job_id, tx_hash=relay.tx_hash, nonce=nonce, gas=gas,
                 max_fee_gwei=round(max_fee / GWEI, 3))
        return relay

    async def _broadcast(self, raw_tx: str) -> None:
        try:
            await self.chain.w3.eth.send_raw_transaction(raw_tx)
        except (Web3Exception, ValueError) as exc:
            # "already known" / "nonce too low" (it was mined): nothing to do. Anything else: the loop re-sends.
            log.warning("relay broadcast failed; the relayer loop retries", error=str(exc)[:200])

    async def run(self, interval: float) -> None:
        """Keeps the balance fresh and unsticks relays: re-sends dropped ones, bumps the fee of stuck ones."""
        while True:
            try:
                await self.refresh_balance()
                for relay in await self.chain_store.unminted_relays():
                    await self._unstick(relay)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # node down: the watcher's health says so; try again next round
                log.warning("relayer round failed", error=f"{type(exc).__name__}: {str(exc)[:200]}")
            await asyncio.sleep(interval)

    async def _unstick(self, relay: Relay) -> None:
        w3 = self.chain.w3
        try:
            if (await w3.eth.get_transaction_receipt(relay.tx_hash)) is not None:
                return
        except TransactionNotFound:
            pass
        try:
            await w3.eth.get_transaction(relay.tx_hash)
            known = True
        except TransactionNotFound:
            known = False
        if not known and await w3.eth.get_transaction_count(self.address) > relay.nonce:
            return  # its nonce was used by a replacement that got mined; the watcher has the mint
        if known and time.time() - relay.sent_at < self.settings.relay_stuck_seconds:
            return
        if not known:
            log.info("re-sending a relay the node does not know", job_id=relay.job_id, nonce=relay.nonce)
            await self._broadcast(relay.raw_tx)
            return
        async with self._lock:
            await self._replace(relay)

    async def _replace(self, relay: Relay) -> None:
        max_fee = min(relay.max_fee * 5 // 4 + 1, self.max_fee_cap)
        if max_fee <= relay.max_fee:
            log.warning("relay stuck at the gas-price ceiling", job_id=relay.job_id, nonce=relay.nonce)
            return
        decoded: dict[str, Any] = TypedTransaction.from_bytes(HexBytes(relay.raw_tx)).as_dict()
        tip = min(max(decoded.get("maxPriorityFeePerGas", GWEI) * 5 // 4 + 1, GWEI), max_fee)
        tx = {"from": self.address, "to": self.chain.address, "data": HexBytes(decoded["data"]).to_0x_hex(), "value": 0,
              "gas": decoded["gas"], "nonce": relay.nonce, "chainId": self.chain.chain_id,
              "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2}
        signed = self._account.sign_transaction(tx)
        await self.chain_store.replace_relay(relay.job_id, signed.hash.to_0x_hex(), signed.raw_transaction.to_0x_hex(),
                                             max_fee)
        await self._broadcast(signed.raw_transaction.to_0x_hex())
        log.info("replaced a stuck relay with a higher fee", job_id=relay.job_id, nonce=relay.nonce,
                 tx_hash=signed.hash.to_0x_hex(), max_fee_gwei=round(max_fee / GWEI, 3))
