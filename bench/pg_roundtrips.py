"""One job's database round trips and CPU, SQLite beside PostgreSQL, through the services' own classes (no broker).

Per job, after a warm-up job (first connections, prepared statements and imports are not counted):
  gateway   the pin budget's reservation (PinLedger.reserve_budget), as SubmitJob does
  status    reserving the job (JobStore.reserve + mark_published) and applying its 17 events as the events consumer
            does (store.apply + the stage history), the default job's event stream (see bench/job_cost.py)
  pinner    pinning its 4 files (GIF, MP4, PNG, metadata) through PinService as for a remote backend (one shared
            request slot per backend call, the upload claims, the ledger's pins), then the job's result
Counted: statements sent (SQLite: sqlite3's trace callback; PostgreSQL: asyncpg's query logger, BEGIN and COMMIT
included, so one statement = one round trip), and CPU seconds: this process (the client, aiosqlite's threads
included) and, on PostgreSQL, the server backends serving it (/proc/<pid>/stat of each, read as root).

Run: .venv/bin/python bench/pg_roundtrips.py [--jobs 20] [--server postgresql://root@127.0.0.1:5432]
It makes a database mintpipe_bench_<random> on that server and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "libs"), str(ROOT / "services")]

from mintpipe.core.stages import PIN_END, PIN_START, RENDER_END, RENDER_START, band  # noqa: E402
from mintpipe.db.core import PostgresDatabase, SqliteDatabase  # noqa: E402
from mintpipe.objects.ipfs import LocalIpfsStore  # noqa: E402
from mintpipe.pin_ledger import PinLedger  # noqa: E402
from mintpipe.v1 import broker_pb2, jobs_pb2  # noqa: E402
from pinner.backends import LocalBackend  # noqa: E402
from pinner.pinning import PinService  # noqa: E402
from status.jobs.bus import JobBus  # noqa: E402
from status.jobs.service import apply_and_announce  # noqa: E402
from status.jobs.store import JobStore  # noqa: E402

PARTS = ("gateway", "status", "pinner")
TICKS = os.sysconf("SC_CLK_TCK")


class Meter:
    def __init__(self) -> None:
        self.part = ""
        self.statements: Counter[str] = Counter()
        self.cpu: Counter[str] = Counter()
        self.server_cpu: Counter[str] = Counter()
        self.backend_pids: set[int] = set()

    def saw(self, _sql: object = None) -> None:
        if self.part:
            self.statements[self.part] += 1

    async def pg_init(self, conn) -> None:  # type: ignore[no-untyped-def]
        conn.add_query_logger(self.saw)
        self.backend_pids.add(conn.get_server_pid())

    def server_seconds(self) -> float:
        total = 0
        for pid in self.backend_pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, IndexError):
                pass
        return total / TICKS


def events(job_id: str) -> list[broker_pb2.JobEvent]:
    steps = [(jobs_pb2.STAGE_RENDERING, RENDER_START)]
    steps += [(jobs_pb2.STAGE_RENDERING, band(RENDER_START, RENDER_END - 1, p)) for p in range(10, 101, 10)]
    steps += [(jobs_pb2.STAGE_RENDERED, RENDER_END), (jobs_pb2.STAGE_PINNING, PIN_START)]
    steps += [(jobs_pb2.STAGE_PINNING, band(PIN_START, PIN_END, 100 * k / 4)) for k in range(1, 5)]
    out = [broker_pb2.JobEvent(job_id=job_id, stage=s, progress=p, source="bench", replica="b1") for s, p in steps]
    out.append(broker_pb2.JobEvent(job_id=job_id, stage=jobs_pb2.STAGE_PINNED, progress=100, token_uri="ipfs://x",
                                   source="bench", replica="b1"))
    return out


async def run_engine(engine: str, work: Path, dsn: str | None, jobs: int) -> tuple[Meter, int]:
    meter = Meter()

    def database(name: str):  # type: ignore[no-untyped-def]
        if dsn:
            return PostgresDatabase(dsn, connection_init=meter.pg_init)
        return SqliteDatabase(work / name)

    store, bus = JobStore(database("jobs.sqlite3")), JobBus()
    await store.open()
    ledger_db = store.db if dsn else database("pins.sqlite3")
    ledger = await PinLedger(ledger_db, "bench").open()
    if not dsn:
        for db in (store.db, ledger_db):
            await db.set_trace_callback(meter.saw)  # type: ignore[attr-defined]  # reader and writer
    local = LocalIpfsStore(work / f"ipfs-{engine}")
    pins = PinService(LocalBackend(local), ledger, local, rate_limit=10_000, rate_window=60.0, monthly_pins=None)
    pins.remote = True  # take a shared request slot per backend call, as for Pinata (no HTTP is sent)
    rng = random.Random(7)

    async def one_job(n: int) -> None:
        meter.part = "gateway"
        job_id = uuid.uuid4().hex
        settings_hash = f"{n:064x}"
        await ledger.reserve_budget(job_id, settings_hash, 1_000_000)
        meter.part = "status"
        record, _ = await store.reserve(f"key-{n}", "h" * 64, "0x" + "11" * 20, "gen1", json.dumps({"seed": n}))
        await store.mark_published(record.job_id)
        for event in events(record.job_id):
            event.job_id = record.job_id
            await apply_and_announce(store, bus, event)
        meter.part = "pinner"
        cids = {}
        for name in ("image.gif", "animation.mp4", "preview.png", "metadata.json"):
            path = work / f"{engine}-{n}-{name}"
            path.write_bytes(rng.randbytes(4096))
            cids[name] = await pins.pin(path, "application/octet-stream", name, record.job_id, {})
        await ledger.record_job_pinned(record.job_id, settings_hash)
        await ledger.record_job_result(record.job_id, f"ipfs://{cids['metadata.json']}", {"metadata": "x"})
        meter.part = ""

    await one_job(0)  # warm-up
    meter.statements.clear()
    for n in range(1, jobs + 1):
        cpu0, server0 = time.process_time(), meter.server_seconds()
        await one_job(n)
        meter.cpu["all"] += time.process_time() - cpu0
        meter.server_cpu["all"] += meter.server_seconds() - server0
    if ledger_db is not store.db:
        await ledger.close()
    await store.close()
    return meter, jobs


def admin(server: str, sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--server", default="postgresql://root@127.0.0.1:5432")
    args = parser.parse_args()
    name = f"mintpipe_bench_{uuid.uuid4().hex[:10]}"
    admin(args.server, f"CREATE DATABASE {name}")
    try:
        with tempfile.TemporaryDirectory(prefix="mintpipe-bench-pg-") as tmp:
            results = {}
            for engine, dsn in (("sqlite", None), ("postgresql", f"{args.server}/{name}")):
                work = Path(tmp) / engine
                work.mkdir()
                results[engine] = asyncio.run(run_engine(engine, work, dsn, args.jobs))
    finally:
        admin(args.server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    (sq, n), (pg, _) = results["sqlite"], results["postgresql"]
    print(f"per job, mean of {n} jobs after a warm-up one")
    print(f"{'':34}{'SQLite':>10}{'PostgreSQL':>12}{'ratio':>8}")
    for part in PARTS:
        a, b = sq.statements[part] / n, pg.statements[part] / n
        print(f"{'statements (round trips) ' + part:34}{a:10.1f}{b:12.1f}{b / a if a else 0:8.2f}")
    a, b = sum(sq.statements.values()) / n, sum(pg.statements.values()) / n
    print(f"{'statements, whole job':34}{a:10.1f}{b:12.1f}{b / a:8.2f}")
    a, b = 1000 * sq.cpu["all"] / n, 1000 * pg.cpu["all"] / n
    print(f"{'client CPU ms (this process)':34}{a:10.1f}{b:12.1f}{b / a:8.2f}")
    c = 1000 * pg.server_cpu["all"] / n
    print(f"{'server CPU ms (PostgreSQL backends)':34}{'-':>10}{c:12.1f}")
    print(f"{'client + server CPU ms':34}{a:10.1f}{b + c:12.1f}{(b + c) / a:8.2f}")


if __name__ == "__main__":
    main()
