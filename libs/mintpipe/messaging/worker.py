"""The life of a queue-worker process (renderer, pinner): connect, serve health, consume, drain on SIGTERM.

Shutdown order: health → NOT_SERVING, stop consuming, let in-flight messages finish within the grace
period (or hand them back), stop the health server, close the broker connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import grpc

from mintpipe.config import ServiceSettings
from mintpipe.messaging.broker import Broker, Topology
from mintpipe.messaging.consumer import QueueConsumer
from mintpipe.rpc.server import Check, GrpcServer
from mintpipe.runtime.lifecycle import shutdown_event
from mintpipe.runtime.log import configure_logging, get_logger
from mintpipe.runtime.metrics import serve_metrics


class WorkerSettings(Protocol):
    health_host: str
    health_port: int
    metrics_port: int
    prefetch: int


async def run_worker(
    service: str,
    settings: ServiceSettings,
    build_consumer: Callable[[Broker, int], QueueConsumer],
    health_checks: dict[str, Check],
    grpc_services: Sequence[tuple[str, Callable[[grpc.aio.Server], None]]] = (),
) -> None:
    """`build_consumer(broker, prefetch)` makes the service's consumer (the same factory the tests use).
    `grpc_services` are (full service name, add-to-server function) pairs the worker serves beside its health
    (the renderer's previews)."""
    configure_logging(service, settings.log_level)
    log = get_logger(service)
    stop = shutdown_event()
    broker = Broker(settings.amqp_url, Topology(settings.broker_prefix), service)
    log.info("starting", broker=settings.amqp_url_redacted)
    await broker.connect()

    worker: WorkerSettings = settings  # type: ignore[assignment]
    health = GrpcServer(worker.health_host, worker.health_port, [name for name, _ in grpc_services])
    for _name, add_to_server in grpc_services:
        add_to_server(health.server)
    await health.start({"broker": lambda: broker.connected, **health_checks})
    consumer = build_consumer(broker, worker.prefetch)
    await consumer.start()
    metrics_port = serve_metrics(worker.health_host, worker.metrics_port)
    log.info("ready", health=health.port, metrics=f"http://{worker.health_host}:{metrics_port}/metrics")

    await stop.wait()
    log.info("draining", inflight=consumer.inflight)
    await health.begin_shutdown()
    await consumer.stop(settings.grace_seconds)
    await health.stop(grace=1.0)
    await broker.close()
    log.info("stopped")
