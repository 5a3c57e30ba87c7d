"""python -m status: the events consumer, the gRPC StatusService and the HTTP bridge in one process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import grpc
import uvicorn
from sse_starlette.sse import AppStatus

from mintpipe.bootstrap import open_stores_or_exit
from mintpipe.config import load_settings
from mintpipe.db.core import database_for
from mintpipe.db.migrations import DatabaseNewerThanCode
from mintpipe.messaging.broker import Broker, Topology
from mintpipe.rpc.server import GrpcServer
from mintpipe.runtime.disk import DiskGuard
from mintpipe.runtime.lifecycle import freeze_startup_heap, run, shutdown_event
from mintpipe.runtime.log import configure_logging, get_logger
from mintpipe.v1 import gateway_pb2_grpc, renderer_pb2_grpc, status_pb2, status_pb2_grpc
from status.app import BridgeDeps, create_app
from status.clients import MinterClient, renderer_channel
from status.grpc_api import StatusService
from status.jobs.bus import JobBus
from status.jobs.claims import ClaimTokens
from status.jobs.store import JobStore
from status.jobs.view import JobView
from status.minting import chain_deps, close_chain_deps
from status.ops.actions import AdminDeps
from status.ops.views import OpsConfig, pin_ledger_of
from status.replicas.start import start_replicas
from status.settings import StatusSettings
from status.workers.artifact_sweeper import ArtifactSweeper
from status.workers.consumer import events_consumer
from status.workers.dead_letters import DeadLetterWatch
from status.workers.sweeper import OrphanSweeper, retention_sweeper

log = get_logger("status")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: this process drains in its own order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def main() -> None:
    settings = load_settings(StatusSettings)
    configure_logging("status", settings.log_level)
    # With MINTPIPE_ARTIFACTS_URL=s3://..., both live in the object store: cancels reach every renderer and pinner,
    # and /ipfs/{cid} serves what any pinner pinned, on any host. A bad configuration stops here, before anything.
    artifacts, ipfs = await asyncio.to_thread(open_stores_or_exit, settings, True)
    stop = shutdown_event()

    store = JobStore(database_for(settings.database_url, settings.database))
    try:
        await store.open()
    except DatabaseNewerThanCode as exc:
        log.error("refusing to start", error=str(exc), database=store.db.description)
        raise SystemExit(2) from None
    bus = JobBus(settings.watch_poll_seconds)
    broker = Broker(settings.amqp_url, Topology(settings.broker_prefix), "status")
    log.info("starting", broker=settings.amqp_url_redacted, database=store.db.description,
             artifacts=artifacts.describe())
    await broker.connect()

    grpc_server = GrpcServer(settings.grpc_host, settings.grpc_port,
                             [status_pb2.DESCRIPTOR.services_by_name["StatusService"].full_name])
    # --- replicas (issue 11): leader-only duties, the change feed, shared limits (status.replicas.start) ---
    replicas = await start_replicas(settings, store, bus)
    leadership = replicas.leadership
    # --- end replicas ---
    claims = await ClaimTokens.load(store.db, settings.claim_secret.get_secret_value()
                                    if settings.claim_secret else None)
    minter = MinterClient(settings.minter_target) if settings.minter_target else None
    chain = None
    chain_checks = {}
    if minter is not None:
        chain = chain_deps(settings, store, bus, broker, claims, minter)
        chain_checks["minter"] = minter.healthy
        log.info("chain through the minter", minter=settings.minter_target)
    else:
        log.info("no chain configured (STATUS_MINTER_TARGET unset): jobs end at pinned")
    status_pb2_grpc.add_StatusServiceServicer_to_server(StatusService(store, bus, JobView(chain)),
                                                        grpc_server.server)
    checks = {"broker": lambda: broker.connected, "store": store.ping}

    consumer = events_consumer(broker, store, bus, settings.prefetch)
    await consumer.start()
    dead_letters = DeadLetterWatch(broker, store, bus)
    await dead_letters.start()
    leadership.add("orphan-sweeper", OrphanSweeper(store, broker, settings.orphan_after_seconds,
                                                   settings.sweep_interval_seconds).run)
    leadership.add("retention-sweeper", retention_sweeper(store, settings).run)

    gateway_channel = grpc.aio.insecure_channel(settings.gateway_target)
    renderer_chan = renderer_channel(settings.renderer_target)
    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    leadership.add("artifact-sweeper", ArtifactSweeper(
        store, artifacts, pinned_grace=settings.artifact_keep_pinned_seconds,
        failed_keep=settings.artifact_keep_failed_hours * 3600,
        interval=settings.artifact_sweep_interval_seconds).run)
    await replicas.start()
    disk = DiskGuard(settings.data_dir, settings.disk_degraded_free_percent, settings.disk_refuse_free_percent)
    deps = BridgeDeps(store=store, bus=bus, gateway=gateway_pb2_grpc.GatewayServiceStub(gateway_channel),
                      ipfs=ipfs, ipfs_gateway=settings.ipfs_gateway_url,
                      # The disk is the bridge's concern (health and refusals), not gRPC health's: a full volume
                      # should not make the launcher or an orchestrator restart a working service.
                      checks={**checks, **chain_checks, **replicas.checks, "disk": disk.healthy}, disk=disk,
                      ip_limiter=replicas.ip_limiter, replica=leadership.snapshot,
                      trust_forwarded_for=settings.trust_forwarded_for,
                      admin=AdminDeps(broker, store, bus, admin_token, artifacts),
                      max_body_bytes=settings.max_body_bytes, chain=chain, claims=claims,
                      renderer=renderer_pb2_grpc.RendererServiceStub(renderer_chan),
                      preview_limiter=replicas.preview_limiter,
                      web_dir=settings.web_dir,
                      ops=OpsConfig(readonly_token=settings.admin_readonly_token.get_secret_value()
                                    if settings.admin_readonly_token else None,
                                    monthly_pins=settings.monthly_pins,
                                    pin_ledger=pin_ledger_of(store, settings.data_dir),
                                    secure_cookie=settings.admin_secure_cookie,
                                    overview_cache_seconds=settings.overview_cache_seconds))
    http = _Uvicorn(uvicorn.Config(create_app(deps), host=settings.http_host, port=settings.http_port,
                                   log_config=None, access_log=False, lifespan="off",
                                   timeout_graceful_shutdown=int(settings.grace_seconds)))
    http_task = asyncio.create_task(http.serve())
    while not http.started:  # the bridge listening (uvicorn exits the task when it cannot bind)
        if http_task.done():
            await http_task
            raise SystemExit(1)
        await asyncio.sleep(0.02)
    # gRPC (and its health, SERVING) last: a launcher or orchestrator told SERVING may rely on every part,
    # the consumers, the dead-letter watch and the bridge, being up; a broker lost before this point stops the
    # start (exit 1) instead of leaving a half-started service that says it is fine.
    await grpc_server.start(checks)
    freeze_startup_heap()
    log.info("ready", http=f"http://{settings.http_host}:{settings.http_port}", grpc=grpc_server.port)

    await stop.wait()
    log.info("draining")
    await grpc_server.begin_shutdown()
    await replicas.stop_duties()
    await dead_letters.stop()
    await consumer.stop(settings.grace_seconds)
    http.should_exit = True
    AppStatus.should_exit = True  # ends open SSE streams; clients reconnect to another replica
    await asyncio.wait_for(http_task, settings.grace_seconds + 5)
    await grpc_server.stop(grace=min(5.0, settings.grace_seconds))
    await gateway_channel.close()
    await renderer_chan.close()
    await close_chain_deps(chain)
    await broker.close()
    await replicas.close()
    await store.close()
    log.info("stopped")


if __name__ == "__main__":
    run(main())
