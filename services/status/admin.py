"""Operator routes under /v1/admin (bearer token): dead letters with their reasons, replay, cancel."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field

from mintpipe.broker import ATTEMPT_HEADER, REASON_HEADER, Broker
from mintpipe.log import get_logger
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.bus import JobBus
from status.http_errors import ApiError, ErrorOut
from status.store import JobStore

log = get_logger(__name__)
BROWSE_LIMIT = 500
_TYPES = {t.DESCRIPTOR.full_name: t for t in (broker_pb2.RenderJob, broker_pb2.PinJob, broker_pb2.JobEvent)}


@dataclass
class AdminDeps:
    broker: Broker
    store: JobStore
    bus: JobBus
    token: str | None


QueueName = Annotated[str, Path(pattern=r"^(render|pin|events)$", description="render, pin or events")]


class ReplayRequest(BaseModel):
    message_ids: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None, max_length=BROWSE_LIMIT, description="replay only these; all when omitted")


def _job_id(message: Any) -> str:
    message_type = _TYPES.get(message.type or "")
    if message_type is None:
        return ""
    try:
        return message_type.FromString(message.body).job_id
    except DecodeError:
        return ""


def create_admin_router(deps: AdminDeps) -> APIRouter:
    topo = deps.broker.topology
    queues = {"render": topo.render_queue, "pin": topo.pin_queue, "events": topo.status_queue}
    routes = {topo.render_queue: (topo.jobs_exchange, "render"), topo.pin_queue: (topo.jobs_exchange, "pin"),
              topo.status_queue: (topo.events_exchange, "job.replayed")}

    async def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, presented = (authorization or "").partition(" ")
        expected = (deps.token or "").encode()
        if not deps.token or scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), expected):
            raise ApiError(401, "unauthorized", "admin routes need Authorization: Bearer <MINTPIPE_ADMIN_TOKEN>",
                           "Authorization", {"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix="/v1/admin", dependencies=[Depends(require_token)], tags=["admin"],
                       responses={code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413)})

    def work_queue(name: str) -> str:
        if name not in queues:
            raise ApiError(400, "invalid_argument", f"queue: one of {', '.join(queues)}", "queue")
        return queues[name]

    async def browse(queue: str):
        """Dead letters of `queue`, held unacked on a private channel (closing it hands them all back)."""
        channel = await deps.broker.channel(BROWSE_LIMIT)
        dead = await channel.get_queue(topo.dead_queue(queue), ensure=False)
        messages = []
        while len(messages) < BROWSE_LIMIT and (m := await dead.get(no_ack=False, fail=False)) is not None:
            messages.append(m)
        return channel, messages

    @router.get("/dead-letters/{queue}")
    async def list_dead_letters(queue: QueueName) -> dict[str, Any]:
        channel, messages = await browse(work_queue(queue))
        try:
            return {"queue": queue, "count": len(messages), "messages": [
                {"message_id": m.message_id, "type": m.type, "job_id": _job_id(m),
                 "reason": (m.headers or {}).get(REASON_HEADER, "dead-lettered by the broker"),
                 "dead_lettered_by": (m.headers or {}).get("x-mintpipe-dead-lettered-by"),
                 "size": len(m.body)} for m in messages]}
        finally:
            await channel.close()

    @router.post("/dead-letters/{queue}/replay")
    async def replay(queue: QueueName, body: ReplayRequest | None = None) -> dict[str, Any]:
        source = work_queue(queue)
        wanted = set(body.message_ids) if body and body.message_ids is not None else None
        exchange, key = routes[source]
        channel, messages = await browse(source)
        replayed = []
        try:
            for message in messages:
                if wanted is not None and message.message_id not in wanted:
                    continue
                job_id = _job_id(message)
                if job_id and await deps.store.reopen(job_id):
                    log.info("reopened failed job for replay", job_id=job_id)
                headers = {k: v for k, v in (message.headers or {}).items()
                           if k not in (REASON_HEADER, ATTEMPT_HEADER) and not k.startswith("x-mintpipe-dead")}
                await deps.broker.publish(exchange, key, message.body, headers=headers,
                                          message_id=message.message_id, type_=message.type)
                await message.ack()
                replayed.append(message.message_id)
        finally:
            await channel.close()
        log.warning("replayed dead letters", queue=queue, count=len(replayed))
        return {"queue": queue, "replayed": len(replayed), "message_ids": replayed}

    @router.post("/jobs/{job_id}/cancel")
    async def cancel(job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]) -> dict[str, Any]:
        record = await deps.store.get(job_id)
        if record is None:
            raise ApiError(404, "not_found", f"no job {job_id}", "job_id")
        if record.stage in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_MINTED):
            raise ApiError(409, "conflict", f"job {job_id} is already {record.to_json()['stage']}", "job_id")
        updated = await deps.store.apply(broker_pb2.JobEvent(job_id=job_id, stage=jobs_pb2.STAGE_FAILED,
                                                             error="cancelled by an operator", source="admin"))
        if updated is not None:
            deps.bus.publish(updated)
        log.warning("job cancelled by an operator", job_id=job_id)
        return (updated or record).to_json()

    return router
