"""The chain watcher: publishes `minted` from the collection's VoucherRedeemed events, whether or not anyone
reported the mint (a closed tab), and `undone` when a reorg took a mint away.

One round (run by whichever minter replica is the active consumer of `<p>.minter.watch`):
1. the head block, and every 10th round the node's `finalized` block (where the node has one; a dev node that
   calls its head final, or none, gets head - MINTER_CHAIN_FINALITY_DEPTH instead);
2. no new block since the cursor: nothing to read (one call). Else, when the chain still holds the cursor's
   block (the head's own hash, its parent's, or one more call), the collection's VoucherRedeemed logs of the new
   blocks only; when it does not (a reorg under the cursor), the logs of every block not yet final and of every
   mint not yet final, however deep (one eth_getLogs per 2,000 blocks);
3. the head again: only if the chain still holds the head read first (the same block, its child's parent, or
   one more call) do the logs and the cursor belong to one chain (a reorg between the reads changes it; then
   nothing is recorded and the round is retried); a head that moved on is the next round's first read;
4. each mint in the logs is recorded (or moved), `minted` once it has the confirmations, `final` past finality;
   a mint that is no longer in re-read logs is undone only once the contract agrees (`tokenOfJob` is 0): a
   load-balanced node's lagging backend that answers without a log erases nothing.
Calls: one a round while no block comes; with new blocks, three (head, logs, head again: the next round's head),
up to five when several blocks came since the last round and during it. Never a receipt per mint, and the logs
read are the new blocks' only, so a round's work does not grow with the mints waiting for finality.
bench/chain.py counts them at the wire.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from web3.exceptions import Web3Exception

from minter.chain import Chain, SeenMint, _hex
from minter.facts import FactPublisher
from minter.store import MinterStore, StoredMint
from mintpipe.runtime.log import get_logger

log = get_logger("minter.watcher")
MAX_RANGE = 2000  # blocks per eth_getLogs: within what public RPC providers accept
FIRST_LOOKBACK = 50_000  # blocks scanned on a first start without a start block (~7 days at 12 s)
FINALIZED_EVERY = 10  # rounds between reads of the node's finalized block
FRESH_SECONDS = 5.0  # a head read after a round's logs serves as the next round's head this long


class ChainMoved(Exception):
    """The head changed hash while the round read the logs: a reorg; the round is retried."""


class ChainWatcher:
    def __init__(self, chain: Chain, store: MinterStore, facts: FactPublisher, *, finality_depth: int,
                 start_block: int = 0, on_round: Callable[[], Awaitable[None]] | None = None) -> None:
        self.chain, self.store, self.facts = chain, store, facts
        self.finality_depth = finality_depth
        self.start_block = start_block
        self.on_round = on_round
        self.head = 0
        self.finalized = -1
        self.rounds = 0
        self.healthy = False
        self.last_error = ""
        self.last_round_at = 0.0
        self._node_finalized: int | None = None
        self._fresh_latest: tuple[Any, float] | None = None  # the head read after the last round's logs

    async def run_round(self) -> None:
        """One round, its failure kept for health (the caller retries on the next tick)."""
        try:
            await self.round()
            self.healthy, self.last_error = True, ""
        except ChainMoved:
            log.info("chain moved while reading; the next round reads again")
        except (Web3Exception, OSError, TimeoutError, ValueError) as exc:
            if self.healthy:
                log.warning("chain node unreachable", error=f"{type(exc).__name__}: {str(exc)[:200]}")
            self.healthy, self.last_error = False, f"{type(exc).__name__}: {str(exc)[:200]}"
        self.last_round_at = time.time()
        if self.on_round is not None:
            await self.on_round()

    async def round(self) -> None:
        w3 = self.chain.w3
        fresh, self._fresh_latest = self._fresh_latest, None
        latest = fresh[0] if fresh and time.monotonic() - fresh[1] < FRESH_SECONDS else \
            await w3.eth.get_block("latest")
        head, head_hash = int(latest["number"]), _hex(latest["hash"])
        self.head = head
        self.chain.saw_block(int(latest["timestamp"]))
        if self.rounds % FINALIZED_EVERY == 0:
            self._node_finalized = await self._read_finalized(head)
        self.rounds += 1
        final = self._node_finalized if self._node_finalized is not None else head - self.finality_depth
        self.finalized = final
        cursor = await self.store.cursor()
        open_mints = {m.job_id: m for m in await self.store.open_mints()}
        if cursor is not None and cursor == (head, head_hash):
            await self._settle(open_mints.values(), head, final)  # no new block: nothing to read
            return
        if cursor is None:
            lo = self.start_block if self.start_block else max(head - FIRST_LOOKBACK, 0)
        elif await self._continues(cursor, latest):
            lo = cursor[0] + 1  # the blocks up to the cursor are the ones already read: only the new ones
        else:  # a reorg under the cursor: every block not yet final again, and every open mint
            lo = max(min(cursor[0], final) + 1, 0)
            if open_mints:
                lo = min(lo, min(m.block for m in open_mints.values()))
            log.warning("chain reorg under the watcher's cursor; reading again", cursor=cursor[0], read_from=lo)
        lo = max(lo, self.start_block)
        seen: dict[str, SeenMint] = {}
        start = lo
        while start <= head:
            end = min(start + MAX_RANGE - 1, head)
            entries = await w3.eth.get_logs({"address": self.chain.address, "topics": [self.chain.redeemed_topic],
                                             "fromBlock": start, "toBlock": end})
            for mint in self.chain.redeemed(list(entries)):
                seen[mint.job_id] = mint
            start = end + 1
        # The head again: the logs belong to the cursor stored below only if the head is the same block (or its
        # child); kept for the next round, so this costs no extra call when the chain goes on.
        again = await w3.eth.get_block("latest")
        if not await self._continues((head, head_hash), again):
            raise ChainMoved()
        self._fresh_latest = (again, time.monotonic()) if int(again["number"]) > head else None
        for mint in seen.values():
            await self._seen(mint, open_mints.pop(mint.job_id, None), head, final)
        # Only mints in the blocks just read can be missing from them (another replica's round, overlapping a
        # handover, may have recorded one past this round's head).
        for gone in [m for m in open_mints.values() if lo <= m.block <= head]:
            open_mints.pop(gone.job_id)
            await self._missing(gone)
        await self._settle(open_mints.values(), head, final)
        await self.store.set_cursor(head, head_hash)

    async def _continues(self, cursor: tuple[int, str], latest: Any) -> bool:
        """Whether the chain still holds the cursor's block: its own hash, or the head's parent when the head is
        its child (no call); else one call for the block under the cursor."""
        block, block_hash = cursor
        head = int(latest["number"])
        if head == block:
            return _hex(latest["hash"]) == block_hash
        if head == block + 1:
            return _hex(latest["parentHash"]) == block_hash
        if head < block:
            return False
        return _hex((await self.chain.w3.eth.get_block(block))["hash"]) == block_hash

    async def _settle(self, mints: Any, head: int, final: int) -> None:
        """Mints in blocks the chain still holds: `minted` once confirmed, `final` once past finality."""
        for mint in mints:
            if mint.state == "seen" and head - mint.block >= self.chain.confirmations:
                await self.facts.minted(mint.job_id, mint.token_id, mint.wallet, mint.tx_hash, mint.block,
                                        mint.block_hash)
                await self.store.set_mint_state(mint.job_id, "minted")
                log.info("minted", job_id=mint.job_id, token_id=mint.token_id, tx_hash=mint.tx_hash,
                         block=mint.block)
                if mint.block <= final:
                    await self.store.set_mint_state(mint.job_id, "final")
            elif mint.state == "minted" and mint.block <= final:
                await self.store.set_mint_state(mint.job_id, "final")

    async def _read_finalized(self, head: int) -> int | None:
        try:
            block = await self.chain.w3.eth.get_block("finalized")
        except (Web3Exception, ValueError):
            return None
        number = int(block["number"])
        # A dev node (anvil) answers its head as final: take the depth instead there.
        return number if number < head else None

    async def _seen(self, mint: SeenMint, stored: StoredMint | None, head: int, final: int) -> None:
        if stored is None:
            stored = await self.store.mint(mint.job_id)
            if stored is not None and stored.state == "final":
                return
        if stored is None or stored.block_hash != mint.block_hash or stored.tx_hash != mint.tx_hash:
            stored = await self.store.record_mint(mint)
        confirmed = head - mint.block >= self.chain.confirmations
        if stored.state == "seen" and confirmed:
            await self.facts.minted(mint.job_id, mint.token_id, mint.wallet, mint.tx_hash, mint.block,
                                    mint.block_hash)
            await self.store.set_mint_state(mint.job_id, "minted")
            log.info("minted", job_id=mint.job_id, token_id=mint.token_id, tx_hash=mint.tx_hash, block=mint.block)
            stored = await self.store.mint(mint.job_id) or stored
        if stored.state == "minted" and mint.block <= final:
            await self.store.set_mint_state(mint.job_id, "final")

    async def _missing(self, mint: StoredMint) -> None:
        """A mint no longer in the logs: undone only if the contract has no token for the job either."""
        token = await self.chain.token_of_job(mint.job_id)
        if token:
            log.warning("a mint is missing from the node's logs but the contract has its token; kept",
                        job_id=mint.job_id, token_id=token)
            return
        # Announced whatever the state: a mint reported and verified was applied by status itself (VerifyMint),
        # and undoing a job that is not minted changes nothing there.
        await self.facts.undone(mint.job_id, mint.token_id, mint.tx_hash, mint.block)
        await self.store.forget_mint(mint.job_id)
        log.warning("mint undone by a reorg", job_id=mint.job_id, tx_hash=mint.tx_hash, block=mint.block,
                    was_minted=mint.state != "seen")

    async def verified(self, mint: SeenMint) -> tuple[str, int]:
        """A reported transaction checked out (minter.chain.Chain.verify): record it; (state, confirmations).
        The caller (status) applies a confirmed mint at once; the watcher's own `minted` follows and changes
        nothing there."""
        stored = await self.store.record_mint(mint)
        head = int(await self.chain.w3.eth.block_number)
        confirmations = max(head - mint.block, 0)
        if confirmations < self.chain.confirmations:
            return "confirming", confirmations
        if stored.state == "seen":  # status applies it now; a reorg must then announce the undo
            await self.store.set_mint_state(mint.job_id, "minted")
        return "minted", confirmations
