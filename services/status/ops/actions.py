"""Operator routes under /v1/admin (bearer token): dead letters with their reasons, replay, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field

from mintpipe.messaging.broker import (
    ATTEMPT_HEADER,
    REASON_HEADER,
    Broker,
    BrokerUnavailable,
    broker_dead_letter_reason,
)
from mintpipe.objects.artifacts import Artifacts
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.errors import ApiError, ErrorOut, error_body
from status.jobs.bus import JobBus
from status.jobs.service import fail_job
from status.jobs.store import JobStore

log = get_logger("status.admin")
BROWSE_LIMIT = 500
# A robust channel waits for a lost connection to come back before doing anything; an operator's request
# should get a 503 instead of hanging on it.
BROKER_TIMEOUT = 10.0
RETRY_AFTER = "5"
# What the broker (or its connection going away) throws at us: each is a 503, never a 500.
BROKER_ERRORS = (BrokerUnavailable, AMQPError, ChannelInvalidStateError, OSError, TimeoutError)
_TYPES = {t.DESCRIPTOR.full_name: t for t in (broker_pb2.RenderJob, broker_pb2.PinJob, broker_pb2.JobEvent)}


@dataclass
class AdminDeps:
    broker: Broker
    store: JobStore
    bus: JobBus
    token: str | None
    artifacts: Artifacts  # where a cancel leaves the marker every renderer and pinner looks for


QueueName = Annotated[str, Path(pattern=r"^(render|pin|events|relay)$", description="render, pin, events or relay")]


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


def _reason(message: Any) -> str:
    """Why it is a dead letter: the broker's own reason when the broker dead-lettered it (a reason header left by
    an earlier retry is stale then), else the reason the stage that parked it wrote."""
    why = broker_dead_letter_reason(message.headers)
    if why is not None:
        return f"dead-lettered by the broker ({why})"
    return str((message.headers or {}).get(REASON_HEADER) or "dead-lettered by the broker")


def _broker_down(exc: BaseException | str) -> ApiError:
    detail = exc if isinstance(exc, str) else type(exc).__name__
    return ApiError(503, "unavailable", f"broker: unavailable ({detail}); nothing was changed, retry later", None,
                    {"Retry-After": RETRY_AFTER})


async def _close_quietly(channel: AbstractChannel) -> None:
    """Closing hands unacked dead letters back to their queue. When the connection is already gone the
    broker has done that itself, so a failure here changes nothing and must not hide the real answer."""
    with contextlib.suppress(*BROKER_ERRORS):
        async with asyncio.timeout(BROKER_TIMEOUT):
            await channel.close()


def create_admin_router(deps: AdminDeps) -> APIRouter:
    topo = deps.broker.topology
    queues = {"render": topo.render_queue, "pin": topo.pin_queue, "events": topo.status_queue,
              "relay": topo.relay_queue}
    routes = {topo.render_queue: (topo.jobs_exchange, "render"), topo.pin_queue: (topo.jobs_exchange, "pin"),
              topo.status_queue: (topo.events_exchange, "job.replayed"),
              topo.relay_queue: (topo.jobs_exchange, "relay")}

    async def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, presented = (authorization or "").partition(" ")
        expected = (deps.token or "").encode()
        if not deps.token or scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), expected):
            raise ApiError(401, "unauthorized", "admin routes need Authorization: Bearer <MINTPIPE_ADMIN_TOKEN>",
                           "Authorization", {"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix="/v1/admin", dependencies=[Depends(require_token)], tags=["admin"],
                       responses={code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 503)})

    def work_queue(name: str) -> str:
        if name not in queues:
            raise ApiError(400, "invalid_argument", f"queue: one of {', '.join(queues)}", "queue")
        return queues[name]

    async def browse(queue: str) -> tuple[AbstractChannel, list[AbstractIncomingMessage]]:
        """Dead letters of `queue`, held unacked on a private channel (closing it hands them all back)."""
        if not deps.broker.connected:
            raise _broker_down("not connected")
        channel: AbstractChannel | None = None
        messages: list[AbstractIncomingMessage] = []
        try:
            async with asyncio.timeout(BROKER_TIMEOUT):
                channel = await deps.broker.channel(BROWSE_LIMIT)
                dead = await channel.get_queue(topo.dead_queue(queue), ensure=False)
                while len(messages) < BROWSE_LIMIT and (m := await dead.get(no_ack=False, fail=False)) is not None:
                    messages.append(m)
        except BROKER_ERRORS as exc:
            if channel is not None:
                await _close_quietly(channel)
            log.warning("cannot read dead letters", queue=queue, error=repr(exc))
            raise _broker_down(exc) from None
        return channel, messages

    @router.get("/dead-letters/{queue}")
    async def list_dead_letters(queue: QueueName) -> dict[str, Any]:
        channel, messages = await browse(work_queue(queue))
        try:
            return {"queue": queue, "count": len(messages), "messages": [
                {"message_id": m.message_id, "type": m.type, "job_id": _job_id(m),
                 "reason": _reason(m),
                 "dead_lettered_by": (m.headers or {}).get("x-mintpipe-dead-lettered-by"),
                 "size": len(m.body)} for m in messages]}
        finally:
            await _close_quietly(channel)

    async def reopen(job_id: str) -> str | None:
        """Reopen a failed job before its message goes back (a failed job ignores events). Returns the error
        to put back should the message not go back after all, so the job does not wait for nothing."""
        record = await deps.store.get(job_id) if job_id else None
        if record is None or record.stage != jobs_pb2.STAGE_FAILED or not await deps.store.reopen(job_id):
            return None
        log.info("reopened failed job for replay", job_id=job_id)
        return record.state.error or "failed"

    async def cancelled(job_id: str) -> bool:
        if not job_id:
            return False
        return await deps.store.is_cancelled(job_id) or await asyncio.to_thread(deps.artifacts.is_cancelled, job_id)

    async def fail_again(job_id: str, error: str) -> None:
        await fail_job(deps.store, deps.bus, job_id, error, "admin")

    async def send_back(message: AbstractIncomingMessage, exchange: str, key: str) -> None:
        """Publish one dead letter to its work queue (confirmed); raises if the broker does not take it."""
        job_id = _job_id(message)
        previous_error = await reopen(job_id)
        headers = {k: v for k, v in (message.headers or {}).items()
                   if k not in (REASON_HEADER, ATTEMPT_HEADER) and not k.startswith("x-mintpipe-dead")}
        try:
            await deps.broker.publish(exchange, key, message.body, headers=headers,
                                      message_id=message.message_id, type_=message.type)
        except Exception:
            if previous_error is not None:
                await fail_again(job_id, previous_error)
            raise

    midway = ("the broker is unavailable; when it went away midway the body also has `replayed` and "
              "`message_ids` (those went back; the rest are still dead letters)")

    @router.post("/dead-letters/{queue}/replay", response_model=dict[str, Any],
                 responses={503: {"model": ErrorOut, "description": midway}})
    async def replay(queue: QueueName, body: ReplayRequest | None = None) -> Any:
        source = work_queue(queue)
        wanted = set(body.message_ids) if body and body.message_ids is not None else None
        exchange, key = routes[source]
        channel, messages = await browse(source)
        chosen = [m for m in messages if wanted is None or m.message_id in wanted]
        replayed: list[str] = []
        skipped: list[dict[str, str]] = []
        failure: BaseException | None = None
        try:
            for message in chosen:
                if await cancelled(_job_id(message)):
                    # An operator cancelled this job: sending it back would reopen it as `queued`, erase the
                    # cancellation, and leave it waiting forever (every stage drops a cancelled job's message).
                    # Its dead letter is dropped, as the stages drop it, and reported.
                    async with asyncio.timeout(BROKER_TIMEOUT):
                        await message.ack()
                    skipped.append({"message_id": message.message_id, "job_id": _job_id(message)})
                    continue
                await send_back(message, exchange, key)
                # Back in its queue from here on, whatever happens to the ack: count it.
                replayed.append(message.message_id)
                async with asyncio.timeout(BROKER_TIMEOUT):
                    await message.ack()
        except BROKER_ERRORS as exc:
            failure = exc
        except Exception:
            log.error("replay failed midway", queue=queue, replayed=len(replayed), of=len(chosen))
            raise
        finally:
            await _close_quietly(channel)
        if failure is not None:
            # Never half-replay silently: say how far it got. What did not go back is still a dead letter
            # (unacked, so closing the channel returned it); a message whose ack was lost may also still be
            # listed, and replaying it again is harmless since every consumer is idempotent.
            log.error("replay stopped midway", queue=queue, replayed=len(replayed), of=len(chosen),
                      error=repr(failure))
            text = (f"broker: replay stopped after {len(replayed)} of {len(chosen)} dead letters "
                    f"({type(failure).__name__}); those went back to the {queue} queue, the rest are still "
                    "dead letters: retry later to replay them")
            body = {**error_body("unavailable", text), "queue": queue, "replayed": len(replayed),
                    "message_ids": replayed, **({"skipped_cancelled": skipped} if skipped else {})}
            return JSONResponse(body, status_code=503, headers={"Retry-After": RETRY_AFTER})
        log.warning("replayed dead letters", queue=queue, count=len(replayed), skipped_cancelled=len(skipped))
        result: dict[str, Any] = {"queue": queue, "replayed": len(replayed), "message_ids": replayed}
        if skipped:  # jobs an operator cancelled: their dead letters were dropped, not sent back
            result["skipped_cancelled"] = skipped
        if wanted is not None:
            # Ids asked for but not among the dead letters (already replayed, or mistyped).
            result["not_found"] = sorted(wanted - {m.message_id for m in chosen})
        return result

    @router.post("/jobs/{job_id}/cancel")
    async def cancel(job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]) -> dict[str, Any]:
        record = await deps.store.get(job_id)
        if record is None:
            raise ApiError(404, "not_found", f"no job {job_id}", "job_id")
        if record.stage in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_MINTED):
            raise ApiError(409, "conflict", f"job {job_id} is already {record.to_json()['stage']}", "job_id")
        # The marker first: it is what stops a renderer or pinner that holds the job right now.
        await asyncio.to_thread(deps.artifacts.cancel, job_id)
        await deps.store.record_cancel(job_id)
        updated = await fail_job(deps.store, deps.bus, job_id, "cancelled by an operator", "admin")
        log.warning("job cancelled by an operator", job_id=job_id)
        return (updated or record).to_json()

    return router
