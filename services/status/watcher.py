"""The chain watcher: marks jobs minted from the collection's VoucherRedeemed events, whether or not anyone
reported the mint (a closed tab), and undoes a mint a reorg took away.

Each round: read the head; if the block under the cursor changed (a reorg), step the cursor back by the
reorg window; scan the blocks after the cursor for VoucherRedeemed (a bounded range at a time) and record
each mint (one row per job: scanning a block again changes nothing); check every mint still within the
window against its receipt (gone: undone; moved: re-recorded); confirm those with enough blocks on top.
The cursor (block and hash) lives in the job store, so a restart goes on where it stopped. When the node
does not answer, the watcher waits with exponential backoff (capped) and `healthy` is False; nothing crashes.
"""

from __future__ import annotations

import asyncio
import random
import time

from web3.exceptions import TransactionNotFound

from mintpipe.chain import bytes32_to_job_id
from mintpipe.log import get_logger
from status.bus import JobBus
from status.chain import Chain, _hex
from status.chain_store import ChainStore
from status.store import JobStore

log = get_logger("status.watcher")
MAX_RANGE = 2000  # blocks per eth_getLogs: within what public RPC providers accept
MAX_BACKOFF = 30.0
FIRST_LOOKBACK = 50_000  # blocks scanned on a first start without STATUS_CHAIN_START_BLOCK (~7 days at 12 s)


class ChainWatcher:
    def __init__(self, chain: Chain, store: JobStore, chain_store: ChainStore, bus: JobBus,
                 poll_seconds: float, start_block: int = 0) -> None:
        self.chain, self.store, self.chain_store, self.bus = chain, store, chain_store, bus
        self.poll_seconds = poll_seconds
        self.start_block = start_block
        # Deep enough that a reorg the confirmations allow never escapes the re-check.
        self.window = max(2 * chain.confirmations, 12)
        self.healthy = False
        self.last_error = ""
        self.head = 0
        self._wake = asyncio.Event()
        self._topic = chain._codec.events.VoucherRedeemed().topic

    def poke(self) -> None:
        """Run a round now (a mint was just reported or sent)."""
        self._wake.set()

    async def run(self) -> None:
        backoff = self.poll_seconds
        while True:
            try:
                await self.round()
                if not self.healthy:
                    log.info("chain watcher running", head=self.head)
                self.healthy, self.last_error, backoff = True, "", self.poll_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the node is down or answered nonsense: wait and try again
                self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                if self.healthy or backoff == self.poll_seconds:
                    log.warning("chain node unreachable; backing off", error=self.last_error)
                self.healthy = False
                backoff = min(backoff * 2, MAX_BACKOFF)
            self._wake.clear()
            delay = backoff if not self.healthy else self.poll_seconds
            try:
                await asyncio.wait_for(self._wake.wait(), delay * random.uniform(0.9, 1.1))
            except TimeoutError:
                pass

    async def round(self) -> None:
        w3 = self.chain.w3
        self.head = head = await w3.eth.block_number
        cursor = await self.chain_store.cursor()
        if cursor is None:
            # First run: from the configured block, else a bounded look-back (not from genesis on mainnet).
            start = self.start_block - 1 if self.start_block else max(head - FIRST_LOOKBACK, -1)
        else:
            start, cursor_hash = cursor
            if start > head or _hex((await w3.eth.get_block(start))["hash"]) != cursor_hash:
                rewound = max(min(start, head) - self.window, self.start_block - 1)
                log.warning("chain reorg under the watcher's cursor; scanning again", cursor=start, rewind_to=rewound)
                start = rewound
        while start < head:
            end = min(start + MAX_RANGE, head)
            logs = await w3.eth.get_logs({"address": self.chain.address, "topics": [self._topic],
                                          "fromBlock": start + 1, "toBlock": end})
            for entry in logs:
                await self._seen(entry)
            block = await w3.eth.get_block(end)
            await self.chain_store.set_cursor(end, _hex(block["hash"]))
            start = end
        await self._recheck(head)

    async def _seen(self, entry: dict) -> None:
        event = self.chain._codec.events.VoucherRedeemed().process_log(entry)["args"]
        job_id = bytes32_to_job_id(event["jobId"])
        record = await self.store.get(job_id) if job_id else None
        if record is None or record.wallet.lower() != event["to"].lower():
            log.warning("mint of a job this store does not know", job_id=job_id, token_id=event["tokenId"])
            return
        await self.chain_store.record(job_id, event["tokenId"], _hex(entry["transactionHash"]),
                                      entry["blockNumber"], _hex(entry["blockHash"]))

    async def _recheck(self, head: int) -> None:
        w3 = self.chain.w3
        recent = {m.job_id: m for m in await self.chain_store.mints_since(head - self.window)}
        recent.update({m.job_id: m for m in await self.chain_store.unconfirmed()})
        for mint in recent.values():
            try:
                receipt = await w3.eth.get_transaction_receipt(mint.tx_hash)
            except TransactionNotFound:
                receipt = None
            if receipt is None or receipt["status"] != 1:
                changed = await self.chain_store.undo(mint.job_id)
                log.warning("mint undone by a reorg", job_id=mint.job_id, tx_hash=mint.tx_hash, block=mint.block,
                            was_minted=changed is not None)
                if changed is not None:
                    self.bus.publish(changed)
                continue
            if _hex(receipt["blockHash"]) != mint.block_hash:
                await self.chain_store.record(mint.job_id, mint.token_id, mint.tx_hash, receipt["blockNumber"],
                                              _hex(receipt["blockHash"]))
            if not mint.confirmed and head - receipt["blockNumber"] >= self.chain.confirmations:
                changed = await self.chain_store.confirm(mint.job_id)
                if changed is not None:
                    log.info("minted", job_id=mint.job_id, token_id=mint.token_id, tx_hash=mint.tx_hash,
                             block=receipt["blockNumber"], latency_s=round(time.time() - changed.created_at, 1))
                    self.bus.publish(changed)
