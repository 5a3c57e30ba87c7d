"""python -m minter: the chain stage, one replica; run K of them on any hosts.

Starts: settings (exit 2 naming the variable), the minter's store (migrations), the chain (exit 2 when the node,
the contract or a key cannot work; anvil's well-known keys are refused on any chain but a local dev one), the
broker, MinterService with health and reflection, the sender (relay queue) and the watcher (watch queue), both
single active consumers. SIGTERM drains: health NOT_SERVING, stop consuming (a relay in progress finishes or is
handed back), stop the gRPC server, close the broker and the store.
"""

from __future__ import annotations

import sys

from prometheus_client import Gauge

from minter.assembly import assemble
from minter.chain import Chain, ChainConfigError
from minter.relayer import Relayer
from minter.runtime import WatchDuty
from minter.settings import MinterSettings
from minter.store import MinterStore
from minter.watcher import ChainWatcher
from mintpipe.config import load_settings
from mintpipe.db.core import database_for
from mintpipe.db.migrations import DatabaseNewerThanCode
from mintpipe.messaging.broker import Broker, Topology
from mintpipe.runtime.lifecycle import run, shutdown_event
from mintpipe.runtime.log import configure_logging, get_logger
from mintpipe.runtime.metrics import REGISTRY, serve_metrics

log = get_logger("minter")


def register_metrics(watcher: ChainWatcher, duty: WatchDuty, relayer: Relayer | None, sender: object) -> None:
    Gauge("mintpipe_chain_head_block", "the chain head this replica's watcher last read",
          registry=REGISTRY).set_function(lambda: float(watcher.head))
    Gauge("mintpipe_chain_watcher_healthy", "1 while the watcher reaches the node",
          registry=REGISTRY).set_function(lambda: 1.0 if watcher.healthy else 0.0)
    active = Gauge("mintpipe_minter_active", "1 while this replica holds a role (watcher: ran a round lately; "
                   "sender: took a relay message lately)", ["role"], registry=REGISTRY)
    active.labels("watcher").set_function(lambda: 1.0 if duty.active else 0.0)
    active.labels("sender").set_function(lambda: 1.0 if duty.sending else 0.0)
    if relayer is not None:
        Gauge("mintpipe_relayer_balance_wei", "the relayer account's balance at its last check",
              registry=REGISTRY).set_function(lambda: float(relayer.balance or 0))
        relays = Gauge("mintpipe_relays", "relays this replica sent, refused, replaced, renewed, resent",
                       ["outcome"], registry=REGISTRY)
        for outcome in relayer.counts:
            relays.labels(outcome).set_function(lambda o=outcome: float(relayer.counts[o]))


async def main() -> None:
    settings = load_settings(MinterSettings)
    configure_logging("minter", settings.log_level)
    stop = shutdown_event()
    store = MinterStore(database_for(settings.database_url, settings.database))
    try:
        await store.open()
    except DatabaseNewerThanCode as exc:
        log.error("refusing to start", error=str(exc))
        raise SystemExit(2) from None
    chain = Chain(settings)
    try:
        await chain.connect()
    except ChainConfigError as exc:
        print(f"minter: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    broker = Broker(settings.amqp_url, Topology(settings.broker_prefix), "minter")
    log.info("starting", broker=settings.amqp_url_redacted, database=store.db.description)
    await broker.connect()
    parts = assemble(settings, chain, store, broker)
    watcher, relayer, sender, duty, server = parts.watcher, parts.relayer, parts.sender, parts.duty, parts.server
    checks = parts.checks
    if relayer is not None and sender is not None:
        await relayer.refresh_balance()
        await sender.start()
        log.info("relayed mints on", relayer=relayer.address, per_wallet_daily=settings.relay_per_wallet_daily,
                 daily=settings.relay_daily, daily_budget_eth=settings.relay_daily_budget_eth,
                 max_gas_price_gwei=settings.relay_max_gas_price_gwei)
    await duty.start()
    register_metrics(watcher, duty, relayer, sender)
    await server.start(checks)
    metrics_port = serve_metrics(settings.metrics_host, settings.metrics_port)
    log.info("ready", grpc=server.port, metrics=f"http://{settings.metrics_host}:{metrics_port}/metrics",
             chain_id=chain.chain_id, contract=chain.address)

    await stop.wait()
    log.info("draining")
    await server.begin_shutdown()
    await duty.stop()
    if sender is not None:
        await sender.stop(settings.grace_seconds)
    await server.stop(grace=min(5.0, settings.grace_seconds))
    await broker.close()
    await chain.close()
    await store.close()
    log.info("stopped")


if __name__ == "__main__":
    run(main())
