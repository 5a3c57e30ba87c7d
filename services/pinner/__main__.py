"""python -m pinner: one replica; run M of them as competing consumers."""

from __future__ import annotations

import asyncio

from mintpipe.bootstrap import open_stores_or_exit, store_database
from mintpipe.config import load_settings
from mintpipe.messaging.worker import run_worker
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.pin_ledger import PinLedger
from mintpipe.runtime.log import get_logger
from pinner.backends import LocalBackend, PinataBackend, PinBackend
from pinner.consumer import pin_consumer
from pinner.metrics import register as register_metrics
from pinner.pinning import PinService
from pinner.settings import PinnerSettings


def build_backend(settings: PinnerSettings, store: LocalIpfsStore) -> PinBackend:
    if settings.backend == "pinata":
        assert settings.pinata_jwt is not None
        return PinataBackend(settings.pinata_jwt.get_secret_value(), settings.pinata_api_url,
                             settings.pinata_uploads_url, settings.pinata_api)
    return LocalBackend(store)


async def main() -> None:
    settings = load_settings(PinnerSettings)
    # With MINTPIPE_ARTIFACTS_URL=s3://..., both live in the object store (the local backend's pins too).
    artifacts, store = open_stores_or_exit(settings, ipfs=True)
    backend = build_backend(settings, store)
    pins = PinService(backend, PinLedger(store_database(settings, "pins.sqlite3"), backend.name), store,
                      rate_limit=settings.rate_limit, rate_window=settings.rate_window_seconds,
                      monthly_pins=settings.monthly_pins)
    # Migrations first (a database newer than this code stops the replica here, naming the migration).
    await pins.ledger.open()
    register_metrics(pins)
    try:
        await run_worker("pinner", settings, lambda broker, prefetch: pin_consumer(broker, artifacts, pins, prefetch),
                         {"store": lambda: asyncio.to_thread(store.healthy)})
    finally:
        await backend.aclose()
        await pins.ledger.close()
        # What this replica did and how long it slept for the shared rate limit, for operators and benchmarks.
        get_logger("pinner").info("totals", **{k: round(v, 1) for k, v in sorted(pins.counts.items())})


if __name__ == "__main__":
    asyncio.run(main())
