"""The durable job store: jobs, and idempotency keys that outlive job cleanup.

On SQLite (WAL, the default: a file under the data folder) or PostgreSQL (MINTPIPE_DATABASE_URL), through
mintpipe.db.core; the tables are made by mintpipe.db.migrations (0001_jobs). Every write is one short transaction
(SQLite: on one writer thread that group-commits every write queued meanwhile, each await returning after its
commit, BEGIN IMMEDIATE so several processes may share the file; PostgreSQL: a pooled connection each). Events
change a job by compare-and-set on the state they were applied to (apply_changed), so replicas applying events
of one job never lose one.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

from mintpipe.core.stages import TERMINAL_STAGES
from mintpipe.db.core import Conn, Database, SqliteDatabase
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.records import JobRecord
from status.jobs.transitions import JobState, apply_event

_COLUMNS = ("job_id, wallet, scene, settings_json, stage, progress, error, assets_json, token_uri, published, "
            "created_at, updated_at")


class IdempotencyConflict(Exception):
    """The key already names a job made from another request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"idempotency key already used for job {job_id} with a different request")
        self.job_id = job_id


class BadCursor(ValueError):
    pass


def _row_to_record(row) -> JobRecord:  # type: ignore[no-untyped-def]  # a row of either engine
    state = JobState(stage=row["stage"], progress=row["progress"], error=row["error"],
                     assets=json.loads(row["assets_json"]), token_uri=row["token_uri"])
    return JobRecord(job_id=row["job_id"], wallet=row["wallet"], scene=row["scene"],
                     settings_json=row["settings_json"], created_at=row["created_at"],
                     updated_at=row["updated_at"], state=state, published=bool(row["published"]))


def encode_cursor(record: JobRecord) -> str:
    return base64.urlsafe_b64encode(f"{record.created_at!r}|{record.job_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        return float(created), job_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("not a cursor this service gave out") from exc


class JobStore:
    def __init__(self, target: Path | Database) -> None:
        """`target`: a SQLite file (the embedded default) or any mintpipe.db.core Database (PostgreSQL)."""
        if isinstance(target, Database):
            self.database = target
        else:
            # FULL: events are acked once committed, so a commit must survive a host crash or power cut, not only
            # a killed process (NORMAL in WAL mode may lose the last commits then). Measured here: 1.2-1.4k events
            # a second applied one by one, against 4.3-5k with NORMAL; a default job makes about 15 events.
            self.database = SqliteDatabase(Path(target), synchronous="FULL")
        self.path = getattr(self.database, "path", None)
        self._opened = False

    async def open(self) -> None:
        await self.database.open_migrated()
        self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self.database.close()
            self._opened = False

    @property
    def db(self) -> Database:
        return self.database

    @property
    def engine(self) -> str:
        return self.database.engine

    async def ping(self) -> bool:
        return await self.db.fetchval("SELECT 1") == 1

    async def _fetch(self, job_id: str, conn: Conn | None = None) -> JobRecord | None:
        row = await (conn or self.db).fetchrow(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,))
        return _row_to_record(row) if row else None

    async def get(self, job_id: str) -> JobRecord | None:
        return await self._fetch(job_id)

    async def reserve(self, key: str, request_hash: str, wallet: str, scene: str,
                      settings_json: str) -> tuple[JobRecord, bool]:
        """The job for this idempotency key: a new one (created=True) or the one it already names."""
        async def body(tx: Conn) -> tuple[JobRecord, bool] | None:
            row = await tx.fetchrow("SELECT request_hash, job_id FROM idempotency_keys WHERE key = ?", (key,))
            if row is not None:
                if row["request_hash"] != request_hash:
                    raise IdempotencyConflict(row["job_id"])
                record = await self._fetch(row["job_id"], tx)
                if record is not None:
                    return record, False
                # The job was cleaned up but the key outlives it: make it again under the same id.
                job_id = row["job_id"]
            else:
                job_id = uuid.uuid4().hex
                # ON CONFLICT: on PostgreSQL another replica may insert the same key between our SELECT and
                # this INSERT (SQLite's BEGIN IMMEDIATE rules that out); then we read its row again.
                if not await tx.execute(
                    "INSERT INTO idempotency_keys (key, request_hash, job_id, created_at) VALUES (?,?,?,?) "
                    "ON CONFLICT (key) DO NOTHING", (key, request_hash, job_id, time.time()),
                ):
                    return None
            now = time.time()
            if not await tx.execute(
                "INSERT INTO jobs (job_id, wallet, scene, settings_json, stage, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT (job_id) DO NOTHING",
                (job_id, wallet, scene, settings_json, jobs_pb2.STAGE_QUEUED, now, now),
            ):
                return None  # another replica made the pruned job again a moment ago: read it
            record = await self._fetch(job_id, tx)
            assert record is not None
            return record, True

        while True:
            # SQLite: the whole body on the store's writer thread, group-committed (mintpipe.db.transact).
            made = await self.db.transact(body)
            if made is not None:
                return made

    async def unpublished_before(self, cutoff: float, limit: int = 100) -> list[JobRecord]:
        """Queued jobs whose render job was never confirmed, reserved before `cutoff`."""
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM jobs WHERE published = 0 AND stage = ? AND created_at < ? "
            "ORDER BY created_at LIMIT ?", (jobs_pb2.STAGE_QUEUED, cutoff, limit))
        return [_row_to_record(r) for r in rows]

    async def mark_published(self, job_id: str) -> bool:
        return await self.db.execute("UPDATE jobs SET published = 1 WHERE job_id = ?", (job_id,)) == 1

    async def discard_unpublished(self, job_id: str) -> bool:
        """Delete a job refused before publication, and its key. False if it was published (or is unknown)."""
        async def body(tx: Conn) -> bool:
            deleted = await tx.execute("DELETE FROM jobs WHERE job_id = ? AND published = 0", (job_id,))
            if deleted == 1:
                await tx.execute("DELETE FROM idempotency_keys WHERE job_id = ?", (job_id,))
            return deleted == 1
        return await self.db.transact(body)

    async def prune(self, jobs_before: float, keys_before: float) -> tuple[int, int]:
        """Retention: delete finished jobs (pinned, minted, failed) last updated before `jobs_before`, and
        idempotency keys made before `keys_before`. The two are independent: a key outlives its pruned job
        (a retry with it makes the same job again under the same id), and a job outlives its key."""
        finished = tuple(sorted(TERMINAL_STAGES))
        marks = ",".join("?" * len(finished))
        jobs = await self.db.execute(
            f"DELETE FROM jobs WHERE updated_at < ? AND stage IN ({marks})", (jobs_before, *finished))
        keys = await self.db.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (keys_before,))
        return jobs, keys

    async def reopen(self, job_id: str) -> bool:
        """An operator replays a failed job's message: it is queued again, its error cleared."""
        return await self.db.execute(
            "UPDATE jobs SET stage = ?, error = '', updated_at = ? WHERE job_id = ? AND stage = ?",
            (jobs_pb2.STAGE_QUEUED, time.time(), job_id, jobs_pb2.STAGE_FAILED)) == 1

    async def apply(self, event: broker_pb2.JobEvent) -> JobRecord | None:
        """Apply one event; the updated job, or None when it changed nothing (or names no job we know)."""
        record, _before = await self.apply_changed(event)
        return record

    async def apply_changed(self, event: broker_pb2.JobEvent) -> tuple[JobRecord | None, int]:
        """As apply(), with the job's stage before this event (0 for a job we do not know).

        A compare-and-set on the state the transition was computed from, not a transaction holding the row: two
        statements instead of four (no BEGIN, COMMIT), which on PostgreSQL are round trips, and events of one job
        applied at once (prefetch, or several replicas) still never lose one: the loser reads again and retries.
        Exactly one applier sees each stage change (the consumer records it in the stage history on that)."""
        async def body(conn: Conn) -> tuple[JobRecord | None, int]:
            while True:
                row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (event.job_id,))
                if row is None:
                    return None, 0
                record = _row_to_record(row)
                new_state = apply_event(record.state, event)
                if new_state is None:
                    return None, record.stage
                now = max(time.time(), record.updated_at)
                if await conn.execute(
                    "UPDATE jobs SET stage=?, progress=?, error=?, assets_json=?, token_uri=?, updated_at=? "
                    "WHERE job_id=? AND stage=? AND progress=? AND error=? AND assets_json=? AND token_uri=?",
                    (new_state.stage, new_state.progress, new_state.error,
                     json.dumps(new_state.assets, sort_keys=True), new_state.token_uri, now, event.job_id,
                     row["stage"], row["progress"], row["error"], row["assets_json"], row["token_uri"]),
                ):
                    return JobRecord(job_id=record.job_id, wallet=record.wallet, scene=record.scene,
                                     settings_json=record.settings_json, created_at=record.created_at,
                                     updated_at=now, state=new_state, published=record.published), record.stage

        # SQLite: read and update in one group-committed hop to the writer thread; PostgreSQL: the two
        # statements on the pool, no transaction (mintpipe.db.write).
        return await self.db.write(body)

    async def list(self, *, wallet: str = "", stage: int = 0, limit: int = 20,
                   cursor: str = "") -> tuple[list[JobRecord], str]:
        """A page of jobs, newest first, and the cursor of the next page ('' on the last)."""
        where, args = [], []
        if wallet:
            where.append("wallet = ?")
            args.append(wallet)
        if stage:
            where.append("stage = ?")
            args.append(stage)
        if cursor:
            created, job_id = decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND job_id < ?))")
            args += [created, created, job_id]
        sql = f"SELECT {_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, job_id DESC LIMIT ?"
        args.append(limit + 1)
        rows = await self.db.fetch(sql, args)
        records = [_row_to_record(r) for r in rows[:limit]]
        next_cursor = encode_cursor(records[-1]) if len(rows) > limit else ""
        return records, next_cursor

    async def search(self, *, job_id: str = "", wallet: str = "", cid: str = "", idempotency_key: str = "",
                     stage: int = 0, scene: str = "", since: float | None = None, until: float | None = None,
                     limit: int = 50, cursor: str = "") -> tuple[list[JobRecord], str]:
        """The operators' search (status's admin API): jobs matching every filter given, newest first, and the
        cursor of the next page ('' on the last). At most one of job_id, wallet (normalized), cid (bare, no
        ipfs://) and idempotency_key is expected; `since` is inclusive, `until` exclusive (epoch seconds). A
        cursor this store did not give out raises BadCursor."""
        where: list[str] = []
        args: list[object] = []
        if job_id:
            where.append("job_id = ?")
            args.append(job_id)
        elif wallet:
            where.append("wallet = ?")
            args.append(wallet)
        elif cid:
            # LIKE, not SQLite's instr(): both engines have it, and a CID holds no LIKE wildcard (% or _).
            where.append("(token_uri = ? OR assets_json LIKE ?)")
            args += [f"ipfs://{cid}", f"%{json.dumps(cid)}%"]
        elif idempotency_key:
            where.append("job_id IN (SELECT job_id FROM idempotency_keys WHERE key = ?)")
            args.append(idempotency_key)
        if stage:
            where.append("stage = ?")
            args.append(stage)
        if scene:
            where.append("scene = ?")
            args.append(scene)
        if since is not None:
            where.append("created_at >= ?")
            args.append(since)
        if until is not None:
            where.append("created_at < ?")
            args.append(until)
        if cursor:
            created, last_id = decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND job_id < ?))")
            args += [created, created, last_id]
        sql = f"SELECT {_COLUMNS} FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, job_id DESC LIMIT ?"
        args.append(limit + 1)
        rows = await self.db.fetch(sql, args)
        records = [_row_to_record(r) for r in rows[:limit]]
        return records, encode_cursor(records[-1]) if len(rows) > limit else ""

    # Operators' cancels, kept apart from the job row (whose error a replay would clear): a replay skips these
    # jobs, and they outlive the artifact store's cancel markers, which are swept.
    async def record_cancel(self, job_id: str) -> None:
        await self.db.execute("INSERT INTO cancellations (job_id, cancelled_at) VALUES (?, ?) "
                              "ON CONFLICT (job_id) DO NOTHING", (job_id, time.time()))

    async def is_cancelled(self, job_id: str) -> bool:
        return await self.db.fetchrow("SELECT 1 FROM cancellations WHERE job_id = ?", (job_id,)) is not None
