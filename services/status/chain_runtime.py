"""Starts status's chain side from its settings: nothing without MINTPIPE_CHAIN_RPC_URL; otherwise the
verifier/signer, the watcher, the relayer (with a relayer key) and their health checks. A setting that
cannot work (no code at the contract address, a key that is not a signer) stops the service at start with
a message naming the variable. Given the replicas' Leadership (status.leader), the watcher and the relayer
run only on the leader, and a follower's chain check does not count the watcher it does not run."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mintpipe.log import get_logger
from status.bus import JobBus
from status.chain import Chain, ChainConfigError
from status.chain_api import ChainDeps
from status.chain_store import ChainStore
from status.leader import Leadership
from status.relayer import Relayer
from status.settings import StatusSettings
from status.store import JobStore
from status.watcher import ChainWatcher

log = get_logger("status.chain")


@dataclass
class ChainRuntime:
    deps: ChainDeps | None = None
    watcher: ChainWatcher | None = None
    checks: dict[str, Callable[[], Any]] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


async def start_chain(settings: StatusSettings, store: JobStore, bus: JobBus,
                      leadership: Leadership | None = None) -> ChainRuntime:
    if not settings.chain_rpc_url:
        log.info("no chain configured (MINTPIPE_CHAIN_RPC_URL unset): jobs end at pinned")
        return ChainRuntime()
    chain_store = ChainStore(store)
    await chain_store.open()
    chain = Chain(settings, chain_store)
    try:
        await chain.connect()
    except ChainConfigError as exc:
        print(f"status: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    watcher = ChainWatcher(chain, store, chain_store, bus, settings.chain_poll_seconds, settings.chain_start_block)
    relayer = Relayer(chain, chain_store, settings) if settings.chain_relayer_key else None
    runtime = ChainRuntime(ChainDeps(chain, chain_store, relayer, bus, watcher), watcher)
    if leadership is None:
        runtime.checks["chain"] = lambda: watcher.healthy
        runtime.tasks.append(asyncio.create_task(watcher.run()))
    else:
        runtime.checks["chain"] = lambda: watcher.healthy or not leadership.is_leader
        leadership.add("chain-watcher", watcher.run)
    if relayer is not None:
        await relayer.refresh_balance()
        runtime.checks["relayer_funds"] = lambda: relayer.funded
        relay_every = max(settings.chain_poll_seconds, 1.0)
        if leadership is None:
            runtime.tasks.append(asyncio.create_task(relayer.run(relay_every)))
        else:
            leadership.add("relayer", lambda: relayer.run(relay_every))
        log.info("relayed mints on", relayer=relayer.address, per_wallet_daily=settings.relay_per_wallet_daily,
                 daily=settings.relay_daily, max_gas_price_gwei=settings.relay_max_gas_price_gwei)
    return runtime
