"""One minter replica put together from its parts, the same way in `python -m minter` and in the tests: the
watcher, the relayer (with a relayer key) and its single-active consumer, the watch duty, and the gRPC server with
MinterService and the health checks it should track. Nothing here starts; the caller starts and stops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minter.chain import Chain
from minter.facts import FactPublisher
from minter.grpc_api import MinterService
from minter.relayer import Relayer
from minter.runtime import RelayHandler, WatchDuty, relay_consumer
from minter.settings import MinterSettings
from minter.store import MinterStore
from minter.watcher import ChainWatcher
from mintpipe.messaging.broker import Broker
from mintpipe.messaging.consumer import QueueConsumer
from mintpipe.rpc.server import GrpcServer
from mintpipe.v1 import minter_pb2, minter_pb2_grpc


@dataclass
class MinterParts:
    watcher: ChainWatcher
    relayer: Relayer | None
    sender: QueueConsumer | None
    handler: RelayHandler | None
    duty: WatchDuty
    server: GrpcServer
    checks: dict[str, Callable[[], Any]] = field(default_factory=dict)


def assemble(settings: MinterSettings, chain: Chain, store: MinterStore, broker: Broker) -> MinterParts:
    facts = FactPublisher(broker)
    duty_ref: list[WatchDuty] = []

    async def poke() -> None:
        if duty_ref:
            await duty_ref[0].poke()

    watcher = ChainWatcher(chain, store, facts, finality_depth=settings.chain_finality_depth,
                           start_block=settings.chain_start_block)
    relayer = Relayer(chain, store, facts, settings, poke) if settings.chain_relayer_key else None
    sender, handler = relay_consumer(broker, relayer) if relayer is not None else (None, None)
    address = relayer.address if relayer else ""
    duty = WatchDuty(broker, watcher, store, settings.chain_poll_seconds, relayer is not None, handler, address)
    duty_ref.append(duty)
    server = GrpcServer(settings.grpc_host, settings.grpc_port,
                        [minter_pb2.DESCRIPTOR.services_by_name["MinterService"].full_name])
    minter_pb2_grpc.add_MinterServiceServicer_to_server(
        MinterService(chain, watcher, relayer is not None, address, store), server.server)
    checks: dict[str, Callable[[], Any]] = {"broker": lambda: broker.connected,
                                            "chain": lambda: watcher.healthy or not duty.active}
    if relayer is not None:
        checks["relayer_funds"] = lambda: relayer.funded
    return MinterParts(watcher, relayer, sender, handler, duty, server, checks)
