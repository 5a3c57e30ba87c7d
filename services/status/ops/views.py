"""The operators' JSON API (every screen of /admin has its twin here), under /v1/admin:

  POST /v1/admin/session            a token in, a session cookie out (and the CSRF token); DELETE signs out
  GET  /v1/admin/session            who is signed in, and the session's CSRF token
  GET  /v1/admin/overview           queues, jobs by stage, last hour's throughput and latency, pin budget, warnings
  GET  /v1/admin/jobs               search (job id, wallet, idempotency key, CID) and filters, newest first, paged
  GET  /v1/admin/jobs/{id}/detail   a job with its stage history, retries, dead-letter history and audit lines
  GET  /v1/admin/queues/{q}/dead-letters      dead letters of a queue with their reasons (read-only too)
  POST /v1/admin/actions/replay/{q}           replay all (or some) dead letters of a queue
  POST /v1/admin/actions/retry/{id}           retry a failed job
  POST /v1/admin/actions/cancel/{id}          cancel a job
  POST /v1/admin/actions/reverify/{id}        check a pinned job's mint transaction on chain again (status.ops.mint)
  GET  /v1/admin/audit              who did what, when

Reads need either token (admin or read-only); actions need the admin one, and with a session cookie also the
CSRF token (status.ops.auth). Every action attempted by an admin is recorded in the audit list, refused or not.
The dead-letter actions reuse the bearer-only routes of status.ops.actions, so replay and cancel behave the same
whichever way an operator comes in.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import generate_latest
from pydantic import BaseModel, Field
from starlette.routing import Route

from mintpipe.core.cid import is_cid
from mintpipe.core.stages import STAGES_BY_NAME, is_job_id
from mintpipe.core.wallets import normalize_wallet
from mintpipe.db.core import Database
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import broker_pb2, jobs_pb2
from status import metrics
from status.errors import ApiError, ErrorOut
from status.jobs import history
from status.jobs.records import iso
from status.jobs.store import BadCursor, JobStore
from status.minting import ChainDeps
from status.ops import mint
from status.ops.actions import AdminDeps, ReplayRequest
from status.ops.auth import COOKIE, SESSION_SECONDS, OpsAuth, Principal
from status.ops.overview import Overview
from status.ops.pages import create_admin_pages

log = get_logger("status.admin_api")
QUEUES = ("render", "pin", "events")


@dataclass
class OpsConfig:
    readonly_token: str | None = None
    monthly_pins: int | None = None
    # default: beside the artifact store (<data_dir>/pins.sqlite3); a Database on PostgreSQL
    pin_ledger: Path | Database | None = None
    secure_cookie: bool = False  # set Secure on the session cookie (behind HTTPS)
    web_dir: Path | None = None  # built web apps (web/dist); default: the checkout's
    overview_cache_seconds: float = 2.0  # dashboards polling at once share a snapshot this fresh


class ReverifyBody(BaseModel):
    tx_hash: str | None = Field(None, max_length=100, description="the mint transaction; default: the one known")


class LoginBody(BaseModel):
    token: str = Field(min_length=1, max_length=500, description="MINTPIPE_ADMIN_TOKEN or the read-only token")


def _when(value: str | None, name: str) -> float | None:
    """An ISO 8601 time or epoch seconds."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_argument", f"{name}: an ISO 8601 time or epoch seconds", name) from None
    if parsed.tzinfo is None:
        raise ApiError(400, "invalid_argument", f"{name}: give a time zone (e.g. Z)", name)
    return parsed.timestamp()


def mount_operators(app: FastAPI, admin: AdminDeps, bearer_routes: APIRouter, config: OpsConfig | None,
                    client_ip: Callable[[Request], str], chain: ChainDeps | None = None) -> None:
    """The JSON API, the dashboard's files at /admin, and the queue gauges of /metrics (app.state.ops_metrics)."""
    config = config or OpsConfig()
    auth = OpsAuth(admin.token, config.readonly_token, client_ip)
    router, overview = create_ops_router(admin, bearer_routes, config, auth, chain)
    app.include_router(router)
    app.include_router(create_admin_pages(auth, config.web_dir, config.secure_cookie))

    async def ops_metrics() -> bytes:
        try:
            await overview.export_gauges()
        except Exception as exc:  # a scrape still answers (the gauges keep their last values)
            log.warning("queue gauges not refreshed", error=repr(exc))
        return generate_latest(metrics.REGISTRY)

    app.state.ops_metrics = ops_metrics


def pin_ledger_of(store: JobStore, data_dir: Path) -> Path | Database:
    """Where the status service keeps the pin ledger: in the store's own database (and pool) on PostgreSQL, else
    the pinner's file beside the data folder's artifacts."""
    return store.db if store.engine == "postgresql" else Path(data_dir) / "pins.sqlite3"


def create_ops_router(admin: AdminDeps, bearer_routes: APIRouter, config: OpsConfig,
                      auth: OpsAuth, chain: ChainDeps | None = None) -> tuple[APIRouter, Overview]:
    store, broker = admin.store, admin.broker
    client_ip_of = auth.client_ip
    ledger = config.pin_ledger or pin_ledger_of(store, admin.artifacts.root.parent)
    overview = Overview(broker, store, ledger, config.monthly_pins,
                        lambda: sum(s.value for m in metrics.EVENTS_APPLIED.collect() for s in m.samples
                                    if s.name.endswith("_total")), config.overview_cache_seconds,
                        chain.minter.replicas if chain is not None else None)
    endpoints: dict[str, Callable[..., Awaitable[Any]]] = {
        r.name: r.endpoint for r in bearer_routes.routes if isinstance(r, Route)}
    router = APIRouter(prefix="/v1/admin", tags=["operators"],
                       responses={c: {"model": ErrorOut} for c in (400, 401, 403, 404, 409, 429, 503)})

    def viewer(request: Request) -> Principal:
        return auth.principal(request)

    async def operator(request: Request) -> Principal:
        try:
            return auth.operator(request)
        except ApiError as exc:
            if exc.status == 403:  # a known caller not allowed to act (read-only, or no CSRF token): recorded
                parts = request.url.path.split("/")
                action, target = (parts[4] if len(parts) > 4 else "?"), "/".join(parts[5:])[:200]
                who = auth.principal(request)
                await history.audit(store, history.AuditEntry(who.actor, action, target, f"refused {exc.code}",
                                                                  {"error": exc.message}))
                metrics.ADMIN_ACTIONS.labels(action, "refused").inc()
            raise

    # Defaults, not Annotated aliases: this module's annotations are strings, resolved in module globals.
    seen, acting = Depends(viewer), Depends(operator)

    # --- session ----------------------------------------------------------------------------------------------
    @router.post("/session")
    async def sign_in(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
        try:
            role = auth.role_of(request, body.token)
        except ApiError as exc:  # a wrong token (or a locked-out address) is worth an audit line too
            await history.audit(store, history.AuditEntry(f"unknown ({client_ip_of(request)})", "sign_in", "",
                                                              f"refused {exc.code}", {}))
            raise
        cookie = auth.new_session(role)
        response.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                            secure=config.secure_cookie, path="/")
        who = auth.read_session(cookie)
        assert who is not None
        await history.audit(store, history.AuditEntry(who.actor, "sign_in", role, "ok", {}))
        return {"role": role, "csrf_token": auth.csrf_token(who) if role == "admin" else None,
                "expires_in": SESSION_SECONDS}

    @router.get("/session")
    async def session(who: Principal = seen) -> dict[str, Any]:
        csrf = auth.csrf_token(who) if who.via == "session" and who.role == "admin" else None
        return {"role": who.role, "via": who.via, "csrf_token": csrf, "can_act": who.role == "admin"}

    @router.delete("/session")
    async def sign_out(response: Response, who: Principal = seen) -> dict[str, Any]:
        response.delete_cookie(COOKIE, path="/", samesite="strict", httponly=True)
        return {"signed_out": True}

    # --- reads -------------------------------------------------------------------------------------------------
    @router.get("/overview")
    async def get_overview(_who: Principal = seen) -> dict[str, Any]:
        return await overview.snapshot()

    @router.get("/jobs")
    async def search_jobs(
        _who: Principal = seen,
        q: Annotated[str | None, Query(max_length=300, description="job id, wallet, idempotency key or CID")] = None,
        stage: Annotated[str | None, Query(description="one of " + ", ".join(STAGES_BY_NAME))] = None,
        scene: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[str | None, Query(max_length=40, description="created at or after (ISO 8601)")] = None,
        until: Annotated[str | None, Query(max_length=40, description="created before (ISO 8601)")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        matched_as = None
        found: dict[str, str] = {}
        term = (q or "").strip()
        if term:
            if is_job_id(term.lower()):
                matched_as = "job_id"
                found["job_id"] = term.lower()
            elif re.fullmatch(r"0x[0-9a-fA-F]{40}", term):
                matched_as = "wallet"
                try:
                    found["wallet"] = normalize_wallet(term)
                except ValueError as exc:
                    raise ApiError(400, "invalid_argument", f"q: {exc}", "q") from None
            elif is_cid(term.removeprefix("ipfs://")):
                matched_as = "cid"
                found["cid"] = term.removeprefix("ipfs://")
            else:
                matched_as = "idempotency_key"
                found["idempotency_key"] = term
        if stage and stage not in STAGES_BY_NAME:
            raise ApiError(400, "invalid_argument", f"stage: one of {', '.join(STAGES_BY_NAME)}", "stage")
        start, end = _when(since, "since"), _when(until, "until")
        try:
            records, next_cursor = await store.search(
                **found, stage=STAGES_BY_NAME[stage] if stage else 0, scene=scene or "", since=start, until=end,
                limit=limit, cursor=cursor or "")
        except BadCursor as exc:
            raise ApiError(400, "invalid_argument", f"cursor: {exc}", "cursor") from None
        parked = await history.open_dead_letters(store, [r.job_id for r in records])
        jobs = [{**r.to_json(), "dead_letter": _times([parked[r.job_id]], "at")[0] if r.job_id in parked else None}
                for r in records]
        return {"jobs": jobs, "matched_as": matched_as, "next_cursor": next_cursor or None}

    async def known(job_id: str):
        record = await store.get(job_id) if is_job_id(job_id) else None
        if record is None:
            raise ApiError(404, "not_found", "no job with this id (32 lowercase hex digits)", "job_id")
        return record

    def _times(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
        for row in rows:
            for key in keys:
                if row.get(key) is not None:
                    row[key] = iso(row[key])
        return rows

    @router.get("/jobs/{job_id}/detail")
    async def job_detail(job_id: str, _who: Principal = seen) -> dict[str, Any]:
        record = await known(job_id)
        stages = await history.stage_history(store, job_id)
        for row in stages:
            row["stage"] = jobs_pb2.Stage.Name(row["stage"]).removeprefix("STAGE_").lower()
        retries = await history.retry_history(store, job_id)
        for row in retries:
            row["stage"] = jobs_pb2.Stage.Name(row["stage"]).removeprefix("STAGE_").lower()
        keys = [r[0] for r in await store.db.fetch("SELECT key FROM idempotency_keys WHERE job_id = ?", (job_id,))]
        audit = [a for a in await history.audit_page(store, 500)
                 if a["target"] == job_id or job_id in a["detail"].get("message_ids", ())]
        queued = {"stage": "queued", "at": record.created_at, "source": "gateway", "replica": "", "error": ""}
        parked = (await history.open_dead_letters(store, [job_id])).get(job_id)
        return {**record.to_json(), "idempotency_key": keys[0] if keys and not keys[0].startswith("auto:") else None,
                "history": _times([queued, *stages], "at"), "retries": _times(retries, "at"),
                "dead_letters": _times(await history.dead_letter_history(store, job_id), "at", "replayed_at"),
                "audit": _times(audit, "at"), "parked": _times([parked], "at")[0] if parked else None,
                "chain": chain is not None, "known_mint": await mint.known_mint(chain, job_id),
                "gateway_urls": {k: f"/ipfs/{v.removeprefix('ipfs://')}" if v else None
                                 for k, v in record.to_json()["assets"].items()}}

    @router.get("/queues/{queue}/dead-letters")
    async def dead_letters(queue: str, _who: Principal = seen) -> dict[str, Any]:
        if queue not in QUEUES:
            raise ApiError(400, "invalid_argument", f"queue: one of {', '.join(QUEUES)}", "queue")
        return await endpoints["list_dead_letters"](queue=queue)

    @router.get("/audit")
    async def audit_list(_who: Principal = seen, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                         before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None) -> dict[str, Any]:
        return {"entries": _times(await history.audit_page(store, limit, before), "at")}

    # --- actions -----------------------------------------------------------------------------------------------
    async def recorded(who: Principal, action: str, target: str, run: Callable[[], Awaitable[Any]]) -> Any:
        """Run an action and record it (who, when, what, outcome) whatever happens."""
        try:
            result = await run()
        except ApiError as exc:
            await history.audit(store, history.AuditEntry(who.actor, action, target, f"refused {exc.status}",
                                                              {"error": exc.message}))
            metrics.ADMIN_ACTIONS.labels(action, "refused").inc()
            raise
        except Exception as exc:
            await history.audit(store, history.AuditEntry(who.actor, action, target, "error",
                                                              {"error": type(exc).__name__}))
            metrics.ADMIN_ACTIONS.labels(action, "error").inc()
            raise
        body = result
        if isinstance(result, JSONResponse):  # a replay cut short: 503 with how far it got
            body = json.loads(result.body)
        outcome = "ok" if not isinstance(result, JSONResponse) or result.status_code < 400 else "partial"
        await history.audit(store, history.AuditEntry(who.actor, action, target, outcome, _summary(body)))
        metrics.ADMIN_ACTIONS.labels(action, outcome).inc()
        return result

    async def after_replay(queue: str, message_ids: list[str]) -> None:
        await history.note_replayed(store, queue, message_ids)
        for job_id in {m for m in message_ids if is_job_id(m)}:
            record = await store.get(job_id)
            if record is not None and record.stage == jobs_pb2.STAGE_QUEUED:
                await history.note_stage(store, job_id, jobs_pb2.STAGE_QUEUED, "admin", "replay")

    async def replay_ids(queue: str, ids: list[str] | None) -> Any:
        result = await endpoints["replay"](queue=queue, body=ReplayRequest(message_ids=ids))
        body = json.loads(result.body) if isinstance(result, JSONResponse) else result
        await after_replay(queue, list(body.get("message_ids") or []))
        return result

    @router.post("/actions/replay/{queue}")
    async def replay(queue: str, who: Principal = acting, body: ReplayRequest | None = None) -> Any:
        if queue not in QUEUES:
            raise ApiError(400, "invalid_argument", f"queue: one of {', '.join(QUEUES)}", "queue")
        ids = body.message_ids if body else None
        return await recorded(who, "replay", queue if ids is None else f"{queue}:{','.join(ids)[:200]}",
                              lambda: replay_ids(queue, ids))

    @router.post("/actions/retry/{job_id}")
    async def retry(job_id: str, who: Principal = acting) -> Any:
        async def run() -> dict[str, Any]:
            record = await known(job_id)
            parked = (await history.open_dead_letters(store, [job_id])).get(job_id)
            if record.stage != jobs_pb2.STAGE_FAILED and parked is None:
                raise ApiError(409, "conflict", f"only a failed job, or one parked in a dead-letter queue, can be "
                               f"retried; this one is {record.to_json()['stage']}", "job_id")
            # Its message may still wait as a dead letter: replaying it resumes where it stopped (a pin job
            # does not render again).
            for queue in ("pin", "render"):
                listed = await endpoints["list_dead_letters"](queue=queue)
                ids = [m["message_id"] for m in listed["messages"] if m["job_id"] == job_id and m["message_id"]]
                if ids:
                    result = await replay_ids(queue, ids)
                    body = json.loads(result.body) if isinstance(result, JSONResponse) else result
                    return {"job_id": job_id, "how": f"replayed its dead letter from {queue}", **body}
            if record.stage != jobs_pb2.STAGE_FAILED:
                raise ApiError(409, "conflict", "its dead letter is no longer in the queue (replayed meanwhile?)",
                               "job_id")
            # No message left anywhere (cancelled, or dropped): render it again from the stored settings. The
            # renderer finds its finished files if it had any, the pinner uploads nothing twice.
            await asyncio.to_thread(admin.artifacts.remove_cancel_marker, job_id)  # lift the operator's cancel
            if not await store.reopen(job_id):
                raise ApiError(409, "conflict", "the job changed meanwhile; reload", "job_id")
            await history.note_stage(store, job_id, jobs_pb2.STAGE_QUEUED, "admin", "retry")
            render = broker_pb2.RenderJob(job_id=job_id, scene=record.scene, settings_json=record.settings_json,
                                          wallet=record.wallet)
            try:
                await broker.publish(broker.topology.jobs_exchange, "render", render, message_id=job_id)
            except Exception:
                from status.jobs.service import fail_job

                await fail_job(store, admin.bus, job_id, record.state.error or "failed", "admin")
                raise ApiError(503, "unavailable", "broker: the retry was not confirmed; the job stays failed",
                               None, {"Retry-After": "5"}) from None
            return {"job_id": job_id, "how": "sent to the render queue again"}

        return await recorded(who, "retry", job_id, run)

    @router.post("/actions/cancel/{job_id}")
    async def cancel(job_id: str, who: Principal = acting) -> Any:
        async def run() -> Any:
            if not is_job_id(job_id):
                raise ApiError(404, "not_found", "no job with this id (32 lowercase hex digits)", "job_id")
            return await endpoints["cancel"](job_id=job_id)

        return await recorded(who, "cancel", job_id, run)

    @router.post("/actions/reverify/{job_id}")
    async def reverify(job_id: str, who: Principal = acting, body: ReverifyBody | None = None) -> Any:
        async def run() -> dict[str, Any]:
            result = await mint.reverify(chain, await known(job_id), body.tx_hash if body else None)
            if result["state"] == "minted":
                await history.note_stage(store, job_id, jobs_pb2.STAGE_MINTED, "admin", "reverify")
            return result

        return await recorded(who, "reverify", job_id, run)

    return router, overview


def _summary(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        return {}
    keep = {k: body[k] for k in ("queue", "replayed", "how", "stage", "not_found", "state", "tx_hash", "token_id")
            if k in body}
    if "message_ids" in body:
        keep["message_ids"] = body["message_ids"][:50]
    return keep

