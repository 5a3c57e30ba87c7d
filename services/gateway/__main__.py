"""python -m gateway"""

from __future__ import annotations

import asyncio

import grpc

from gateway.service import GatewayService
from gateway.settings import GatewaySettings
from mintpipe.bootstrap import store_database
from mintpipe.config import load_settings
from mintpipe.limits.memory import rate_limiter
from mintpipe.messaging.broker import Broker, Topology
from mintpipe.pin_ledger import PinLedger
from mintpipe.rpc.server import GrpcServer
from mintpipe.runtime.lifecycle import freeze_startup_heap, run, shutdown_event
from mintpipe.runtime.log import configure_logging, get_logger
from mintpipe.runtime.metrics import serve_metrics
from mintpipe.v1 import gateway_pb2, gateway_pb2_grpc, status_pb2_grpc

log = get_logger("gateway")
CLOSE_SECONDS = 2.0  # for the marks on a drain: a status service answers them in a few ms


async def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging("gateway", settings.log_level)
    stop = shutdown_event()
    broker = Broker(settings.amqp_url, Topology(settings.broker_prefix), "gateway")
    log.info("starting", broker=settings.amqp_url_redacted, status=settings.status_target)
    await broker.connect()
    ledger = await PinLedger(store_database(settings, "pins.sqlite3")).open()
    status_channel = grpc.aio.insecure_channel(settings.status_target)

    server = GrpcServer(settings.grpc_host, settings.grpc_port,
                        [gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name])
    service = GatewayService(broker, status_pb2_grpc.StatusServiceStub(status_channel),
                             ledger, settings.monthly_pins,
                             # Shared by every gateway replica when MINTPIPE_DATABASE_URL is PostgreSQL (issue 11).
                             rate_limiter(settings.database_url, "wallet", settings.wallet_rate_per_minute, 60,
                                          settings.wallet_burst))
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(service, server.server)
    await server.start({"broker": lambda: broker.connected})
    metrics_port = serve_metrics(settings.metrics_host, settings.metrics_port)
    freeze_startup_heap()
    log.info("ready", grpc=server.port, metrics=f"http://{settings.metrics_host}:{metrics_port}/metrics")

    await stop.wait()
    log.info("draining")
    await server.begin_shutdown()
    # In-flight SubmitJob calls finish (publish + confirm) within the grace; new ones are refused.
    await server.stop(grace=settings.grace_seconds)
    try:
        # The "published" marks still waiting. Best effort, so bounded: a status service that does not answer
        # must not hold the drain (a lost mark costs at most one republish by the sweeper, absorbed downstream).
        await asyncio.wait_for(service.close(), CLOSE_SECONDS)
    except TimeoutError:
        log.warning("marks not sent before the drain's end", seconds=CLOSE_SECONDS)
    await status_channel.close()
    await broker.close()
    await ledger.close()
    log.info("stopped")


if __name__ == "__main__":
    run(main())
