"""Relayed (gasless) mints: the minter sends a pinned job's voucher from its relayer key and pays the gas; the
token still goes to the job's wallet (the contract mints to the voucher's `to`, whoever sends it).

Only the active consumer of `<p>.minter.relay` runs this (RabbitMQ's single active consumer: one replica at a
time, handed over when it goes), and the nonce fence in the store (minter.store) holds even if two ever
overlapped. A relay is stored with its signed transaction before it is sent, so a crash between the two is
repaired by the sweep, which also:
- re-sends a transaction the node lost, while its voucher is still valid;
- replaces one left unmined for `relay_stuck_seconds` (or whose voucher nears its deadline) with the same nonce, a
  fresh voucher and fees at least 12.5 % higher on both caps (geth and others want 10 %); the stored hash becomes
  the replacement's only once the node accepted it;
- renews a relay that can never be mined (it reverted with VoucherExpired, or its nonce went to another
  transaction while the job is still unminted on chain) with a new nonce and a fresh voucher;
- marks done one that the chain minted (ours, a replacement, or the collector's own wallet first).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractCustomError, TransactionNotFound, Web3Exception

from minter.chain import Chain, JobRef, MintProblem
from minter.facts import FactPublisher
from minter.settings import MinterSettings
from minter.store import CapReached, Caps, MinterStore, NonceTaken, Relay
from mintpipe.runtime.log import get_logger

log = get_logger("minter.relayer")
GWEI = 10**9
BUMP_NUM, BUMP_DEN = 9, 8  # +12.5 % on a replacement: above the 10 % nodes require, with room for rounding


class Relayer:
    def __init__(self, chain: Chain, store: MinterStore, facts: FactPublisher, settings: MinterSettings,
                 poke_watcher: Callable[[], Awaitable[None]] | None = None) -> None:
        assert settings.chain_relayer_key is not None
        self.chain, self.store, self.facts, self.settings = chain, store, facts, settings
        self._account = Account.from_key(settings.chain_relayer_key.get_secret_value())
        self.address = self._account.address
        self.max_fee_cap = int(settings.relay_max_gas_price_gwei * GWEI)
        self.low_balance = Web3.to_wei(settings.relay_low_balance_eth, "ether")
        self.caps = Caps(settings.relay_per_wallet_daily, settings.relay_daily,
                         Web3.to_wei(settings.relay_daily_budget_eth, "ether"))
        self.balance: int | None = None
        self.poke_watcher = poke_watcher
        self.counts = {"sent": 0, "refused": 0, "replaced": 0, "renewed": 0, "resent": 0}

    @property
    def funded(self) -> bool:
        return self.balance is not None and self.balance >= self.low_balance

    async def refresh_balance(self) -> int:
        self.balance = await self.chain.w3.eth.get_balance(self.address)
        return self.balance

    # --- a relay asked for ----------------------------------------------------------------------------------
    async def request(self, job: JobRef) -> None:
        """Sends the job's relay (or answers the one sent before) and publishes what happened. A refusal is
        published as a fact, never raised; a node that does not answer raises (the message is retried)."""
        try:
            relay, new = await self._relay(job)
        except MintProblem as problem:
            # A handover race: the replica that had this message before may have stored and sent its relay while
            # this one was checking (then the mint reverts here as JobAlreadyMinted). Its relay is the answer.
            stored = await self.store.relay(job.job_id)
            if stored is not None and stored.state != "failed":
                log.info("relay already sent by another replica; answered again", job_id=job.job_id,
                         tx_hash=stored.tx_hash)
                await self.facts.relay_sent(job.job_id, stored.tx_hash, job.wallet)
                return
            self.counts["refused"] += 1
            log.info("relay refused", job_id=job.job_id, code=problem.code)
            await self.facts.relay_failed(job.job_id, problem.status, problem.code, problem.message, problem.field)
            return
        if new:
            self.counts["sent"] += 1
        await self.facts.relay_sent(job.job_id, relay.tx_hash, job.wallet)

    async def _relay(self, job: JobRef) -> tuple[Relay, bool]:
        existing = await self.store.relay(job.job_id)
        if existing is not None and existing.state != "failed":
            log.info("relay already sent; answered again", job_id=job.job_id, tx_hash=existing.tx_hash,
                     nonce=existing.nonce)
            return existing, False
        for _ in range(5):  # NonceTaken: another sender took the nonce between our read and our write
            try:
                return await self._take(job, renew_from=existing.tx_hash if existing else None)
            except NonceTaken:
                log.warning("relay nonce taken by another sender; taking the next", job_id=job.job_id)
        raise MintProblem(503, "relay_busy", "relay: the relayer is busy; retry in a moment", "relay")

    async def _take(self, job: JobRef, renew_from: str | None, nonce: int | None = None) -> tuple[Relay, bool]:
        """Signs the job's mint for the next nonce (or `nonce`, for a replacement) and records it, then sends it."""
        w3 = self.chain.w3
        max_fee, tip = await self._fees()  # reads the head: the voucher's deadline counts from its time
        ready = self.chain.mint_ready(job)
        call = {"from": self.address, "to": self.chain.address, "data": ready.tx.data, "value": 0}
        try:
            gas = int(await w3.eth.estimate_gas(call) * 1.2)
        except ContractCustomError as exc:
            data = HexBytes(str(exc.data))
            if self.chain.error_name(data) == "JobAlreadyMinted" and self.poke_watcher is not None:
                await self.poke_watcher()  # the watcher publishes the token it finds
            raise MintProblem(409, "already_minted" if self.chain.error_name(data) == "JobAlreadyMinted"
                              else "refused", self.chain.explain(data), "relay") from None
        if await self.refresh_balance() < gas * max_fee:
            raise MintProblem(503, "relayer_unfunded", "relay: the relayer cannot pay for gas right now; mint from "
                              "a wallet (the job's `mint.tx`)", "relay")
        node_nonce = await w3.eth.get_transaction_count(self.address, "pending")
        now = time.time()
        template = Relay(job_id=job.job_id, wallet=job.wallet, token_uri=job.token_uri, sender=self.address,
                         nonce=-1, tx_hash="", raw_tx="", max_fee=max_fee, gas=gas,
                         deadline=ready.voucher.deadline, state="sent", error="", attempts=1, created_at=now,
                         sent_at=now)

        def sign(n: int) -> tuple[str, str]:
            signed = self._account.sign_transaction(
                {**call, "gas": gas, "nonce": n, "chainId": self.chain.chain_id, "maxFeePerGas": max_fee,
                 "maxPriorityFeePerGas": tip, "type": 2})
            return signed.hash.to_0x_hex(), signed.raw_transaction.to_0x_hex()

        try:
            relay, taken = await self.store.take_relay(template, None if renew_from else self.caps, node_nonce,
                                                       sign, renew_from)
        except CapReached as cap:
            raise MintProblem(429, cap.code, cap.message, cap.field) from None
        if taken:
            await self._broadcast(relay.raw_tx)
            log.info("relayed mint sent", job_id=job.job_id, tx_hash=relay.tx_hash, nonce=relay.nonce, gas=gas,
                     max_fee_gwei=round(max_fee / GWEI, 3), attempt=relay.attempts)
        return relay, taken

    async def _fees(self, at_least: tuple[int, int] = (0, 0)) -> tuple[int, int]:
        block = await self.chain.w3.eth.get_block("latest")
        self.chain.saw_block(int(block["timestamp"]))
        base = int(block.get("baseFeePerGas") or await self.chain.w3.eth.gas_price)
        tip = max(min(GWEI, self.max_fee_cap), at_least[1])
        if base + tip > self.max_fee_cap:
            raise MintProblem(503, "gas_too_high", f"relay: gas costs {base / GWEI:.1f} gwei, above the relayer's "
                              f"ceiling of {self.max_fee_cap / GWEI:g} gwei; retry later or mint from a wallet",
                              "relay")
        return max(min(2 * base + tip, self.max_fee_cap), at_least[0]), tip

    async def _broadcast(self, raw_tx: str) -> str | None:
        """Sends a signed transaction; None once the node took it, else its refusal (the sweep repairs it)."""
        try:
            await self.chain.w3.eth.send_raw_transaction(raw_tx)
            return None
        except (Web3Exception, ValueError) as exc:
            text = str(exc)[:200]
            if "already known" in text.lower():
                return None
            log.warning("relay broadcast refused; the sweep repairs it", error=text)
            return text

    # --- the sweep: every relay in flight -----------------------------------------------------------------
    async def sweep(self) -> None:
        await self.refresh_balance()
        for relay in await self.store.relays_in_flight():
            try:
                await self._check(relay)
            except MintProblem as problem:
                log.warning("relay failed", job_id=relay.job_id, code=problem.code, reason=problem.message)
                await self.store.update_relay(relay.job_id, relay.tx_hash, state="failed", error=problem.message)
                await self.facts.relay_failed(relay.job_id, problem.status, problem.code, problem.message,
                                              problem.field)

    async def _check(self, relay: Relay) -> None:
        w3 = self.chain.w3
        job = JobRef(relay.job_id, relay.wallet, relay.token_uri)
        try:
            receipt = await w3.eth.get_transaction_receipt(relay.tx_hash)
        except TransactionNotFound:
            receipt = None
        if receipt is not None:
            await self._mined(relay, job, receipt)
            return
        try:
            await w3.eth.get_transaction(relay.tx_hash)
            known = True
        except TransactionNotFound:
            known = False
        now = time.time() + self.chain.clock_ahead  # the chain's clock: deadlines are checked against it
        margin = min(max(self.settings.relay_stuck_seconds, 60), self.settings.chain_voucher_seconds / 4)
        expiring = relay.deadline - now < margin
        if not known:
            if await w3.eth.get_transaction_count(self.address, "latest") > relay.nonce:
                # Its nonce went to another transaction (a replacement whose hash we never stored, or the key used
                # elsewhere): done if the job has its token, else renewed with a new nonce.
                if await self.chain.token_of_job(relay.job_id):
                    await self._done(relay)
                else:
                    await self._renew(relay, job, "its nonce was used by another transaction")
            elif expiring:
                await self._replace(relay, job)  # never re-sent past its deadline: a fresh voucher, same nonce
            else:
                self.counts["resent"] += 1
                log.info("re-sending a relay the node does not know", job_id=relay.job_id, nonce=relay.nonce)
                await self._broadcast(relay.raw_tx)
            return
        if expiring or time.time() - relay.sent_at >= self.settings.relay_stuck_seconds:
            await self._replace(relay, job)

    async def _mined(self, relay: Relay, job: JobRef, receipt: Any) -> None:
        if receipt["status"] == 1:
            await self._done(relay)
            return
        token = await self.chain.token_of_job(relay.job_id)
        if token:  # JobAlreadyMinted: someone sent the public voucher first; the watcher publishes that token
            await self._done(relay)
            if self.poke_watcher is not None:
                await self.poke_watcher()
            return
        mined_at = int((await self.chain.w3.eth.get_block(receipt["blockNumber"]))["timestamp"])
        if mined_at > relay.deadline:  # VoucherExpired (a replay on the block before would not show it)
            await self._renew(relay, job, "it was mined after its voucher's deadline")
            return
        reason = await self.chain._revert_reason(receipt)
        log.warning("relay reverted", job_id=relay.job_id, tx_hash=relay.tx_hash, reason=reason)
        raise MintProblem(409, "relay_reverted", reason.replace("tx_hash: ", "relay: ", 1), "relay")

    async def _done(self, relay: Relay) -> None:
        await self.store.update_relay(relay.job_id, relay.tx_hash, state="done")

    async def _renew(self, relay: Relay, job: JobRef, why: str) -> None:
        self.counts["renewed"] += 1
        log.info("renewing a relay with a new nonce and a fresh voucher", job_id=relay.job_id, why=why)
        for _ in range(5):
            try:
                renewed, _ = await self._take(job, renew_from=relay.tx_hash)
                await self.facts.relay_sent(job.job_id, renewed.tx_hash, job.wallet)
                return
            except NonceTaken:
                continue

    async def _replace(self, relay: Relay, job: JobRef) -> None:
        """Same nonce, fresh voucher, fees up by 12.5 % at least; stored only once the node accepted it."""
        old = _fees_of(relay.raw_tx)
        want = (old[0] * BUMP_NUM // BUMP_DEN + 1, old[1] * BUMP_NUM // BUMP_DEN + 1)
        if want[0] > self.max_fee_cap:
            log.warning("relay stuck at the gas-price ceiling", job_id=relay.job_id, nonce=relay.nonce)
            return
        max_fee, tip = await self._fees(want)
        ready = self.chain.mint_ready(job)
        tx = {"from": self.address, "to": self.chain.address, "data": ready.tx.data, "value": 0, "gas": relay.gas,
              "nonce": relay.nonce, "chainId": self.chain.chain_id, "maxFeePerGas": max_fee,
              "maxPriorityFeePerGas": min(tip, max_fee), "type": 2}
        signed = self._account.sign_transaction(tx)
        refused = await self._broadcast(signed.raw_transaction.to_0x_hex())
        if refused is not None:
            return
        await self.store.update_relay(relay.job_id, relay.tx_hash, tx_hash=signed.hash.to_0x_hex(),
                                      raw_tx=signed.raw_transaction.to_0x_hex(), max_fee=max_fee,
                                      deadline=ready.voucher.deadline)
        self.counts["replaced"] += 1
        log.info("replaced a relay: same nonce, fresh voucher, higher fee", job_id=relay.job_id, nonce=relay.nonce,
                 tx_hash=signed.hash.to_0x_hex(), max_fee_gwei=round(max_fee / GWEI, 3))
        await self.facts.relay_sent(job.job_id, signed.hash.to_0x_hex(), job.wallet)


def _fees_of(raw_tx: str) -> tuple[int, int]:
    from eth_account.typed_transactions import TypedTransaction

    decoded = TypedTransaction.from_bytes(HexBytes(raw_tx)).as_dict()
    return int(decoded["maxFeePerGas"]), int(decoded["maxPriorityFeePerGas"])
