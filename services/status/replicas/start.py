"""What one status replica needs to run beside others (issue 11), started in one call from status.__main__:
the leadership (which replica runs the sweepers and the chain watcher), the change feed (every replica's
watchers see every change) and the per-IP limits shared by every bridge. With MINTPIPE_DATABASE_URL unset
(SQLite, one replica) this replica leads alone, the feed is off and the limits live in memory, as before."""

from __future__ import annotations

from dataclasses import dataclass, field

from mintpipe.core.stages import replica_id
from mintpipe.db.replica import postgres_dsn
from mintpipe.limits.memory import RateLimiter, rate_limiter
from mintpipe.runtime.log import get_logger
from status.jobs.bus import JobBus
from status.jobs.store import JobStore
from status.replicas.feed import PgChangeFeed
from status.replicas.leader import Leadership
from status.settings import StatusSettings

log = get_logger("status.replicas")


@dataclass
class Replicas:
    leadership: Leadership
    feed: PgChangeFeed | None
    ip_limiter: RateLimiter
    preview_limiter: RateLimiter
    checks: dict[str, object] = field(default_factory=dict)

    async def start(self) -> None:
        """After every duty was added (Leadership.add): the duties start when this replica leads."""
        await self.leadership.start()

    async def stop_duties(self) -> None:
        """First thing when draining: the sweepers and the chain watcher stop, another replica takes the lead."""
        await self.leadership.stop()

    async def close(self) -> None:
        """Last: the feed goes on announcing what the draining consumer still applies."""
        await self.leadership.stop()
        if self.feed is not None:
            await self.feed.stop()
        for limiter in (self.ip_limiter, self.preview_limiter):
            close = getattr(limiter, "close", None)
            if close is not None:
                await close()


async def start_replicas(settings: StatusSettings, store: JobStore, bus: JobBus) -> Replicas:
    dsn = postgres_dsn(settings.database_url)
    name = settings.replica_name or replica_id()
    leadership = Leadership(name, dsn, settings.leader_retry_seconds)
    feed = None
    if dsn is not None:
        feed = PgChangeFeed(dsn, bus, store.get, name)
        await feed.start()
        log.info("replicas share PostgreSQL: leader by advisory lock, change feed by LISTEN/NOTIFY", replica=name)
    return Replicas(
        leadership, feed,
        rate_limiter(dsn, "ip",
                     settings.ip_rate_per_minute, 60, settings.ip_burst),
        rate_limiter(dsn, "preview-ip", settings.preview_ip_rate_per_minute, 60, settings.preview_ip_burst),
        {"change_feed": (lambda: feed.connected)} if feed is not None else {})
