"""What status asks of the minter, for the bridge (status.bridge.chain) and the operators (status.ops): check a
reported mint transaction, ask for a relayed mint. Status holds no key and speaks to no chain node: the minter
answers over gRPC (status.clients.MinterClient), a relay request goes to it through the broker, and what it learns
comes back as events (status.jobs.mints).

The rules live here once: a wallet's report and an operator's re-verification take the same path (verified), and
a relay needs the job's claim token (status.jobs.claims). Failures are ApiErrors (status.errors), the answer the
HTTP routes give.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from mintpipe.core.stages import stage_name
from mintpipe.limits.memory import RateLimiter
from mintpipe.messaging.broker import Broker, BrokerUnavailable
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import broker_pb2, jobs_pb2
from status.clients import MinterClient, MinterUnavailable
from status.errors import ApiError
from status.jobs.bus import JobBus
from status.jobs.claims import ClaimTokens
from status.jobs.mints import apply_mint_fact, mint_of, relay_outcome, set_relay_outcome
from status.jobs.records import JobRecord
from status.jobs.store import JobStore

log = get_logger("status.chain")


@dataclass
class ChainDeps:
    """What the bridge needs for the chain: the minter, and what relays and reports are checked with."""

    minter: MinterClient
    store: JobStore
    bus: JobBus
    broker: Broker | None
    claims: ClaimTokens
    relay_limiter: RateLimiter | None = None
    report_limiter: RateLimiter | None = None
    relay_wait_seconds: float = 10.0


def chain_deps(settings: Any, store: JobStore, bus: JobBus, broker: Broker | None, claims: ClaimTokens,
               minter: MinterClient) -> ChainDeps:
    """The bridge's chain side from StatusSettings: the per-IP limits shared by every replica on PostgreSQL."""
    from mintpipe.limits.memory import rate_limiter

    dsn = settings.database_url
    return ChainDeps(minter=minter, store=store, bus=bus, broker=broker, claims=claims,
                     relay_limiter=rate_limiter(dsn, "relay-ip", settings.relay_ip_rate_per_minute, 60,
                                                settings.relay_ip_burst),
                     report_limiter=rate_limiter(dsn, "report-ip", settings.report_ip_rate_per_minute, 60,
                                                 settings.report_ip_burst),
                     relay_wait_seconds=settings.relay_wait_seconds)


async def close_chain_deps(deps: ChainDeps | None) -> None:
    """The per-IP limiters' pools (PostgreSQL) and the minter's channel."""
    if deps is None:
        return
    for limiter in (deps.relay_limiter, deps.report_limiter):
        close = getattr(limiter, "close", None)
        if close is not None:
            await close()
    await deps.minter.close()


def minter_unavailable(job_id: str, exc: Exception) -> ApiError:
    log.warning("minter unreachable while checking a mint", job_id=job_id, error=str(exc)[:200])
    return ApiError(503, "chain_unavailable", "the chain node does not answer right now; report the transaction "
                    "again in a minute (the watcher also finds it by itself)", None, {"Retry-After": "30"})


async def verified(d: ChainDeps, record: JobRecord, tx_hash: str, source: str = "status") -> dict[str, Any]:
    """Checks a mint transaction with the minter; a confirmed mint is applied here at once (the minter's event
    comes too and changes nothing). The one path for a wallet's report and an operator's re-verification."""
    known = await mint_of(d.store, record.job_id)
    if known is not None and known.tx_hash.lower() != tx_hash.lower():
        raise ApiError(409, "already_minted", f"this job is already minted as token {known.token_id} (transaction "
                       f"{known.tx_hash})", "tx_hash")
    if record.stage not in (jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_MINTED):
        raise ApiError(409, "not_pinned", f"the job is {stage_name(record.stage)}, not pinned yet: nothing to mint",
                       "job_id")
    try:
        reply = await d.minter.verify(record, tx_hash)
    except ValueError as exc:
        raise ApiError(400, "invalid_argument", str(exc), "tx_hash") from None
    except MinterUnavailable as exc:
        raise minter_unavailable(record.job_id, exc) from None
    if reply.HasField("problem"):
        p = reply.problem
        raise ApiError(p.http_status or 422, p.code, p.message, p.field or None)
    current = record
    if reply.state == "minted":
        fact = broker_pb2.MintFact(kind=broker_pb2.MintFact.KIND_MINTED, token_id=reply.token_id,
                                   wallet=record.wallet, tx_hash=reply.tx_hash, block=reply.block)
        event = broker_pb2.JobEvent(job_id=record.job_id, stage=jobs_pb2.STAGE_MINTED, progress=100, mint=fact,
                                    source=source)
        current = await apply_mint_fact(d.store, d.bus, event) or await d.store.get(record.job_id) or record
    elif (known_relay := await relay_outcome(d.store, record.job_id)) is None or known_relay.state != "sent":
        # Remembered for the operators' view and a later re-verification without the hash.
        await set_relay_outcome(d.store, record.job_id, "reported", tx_hash=reply.tx_hash)
    info = await d.minter.info()
    return {"job_id": record.job_id, "stage": stage_name(current.stage), "state": reply.state,
            "tx_hash": reply.tx_hash, "token_id": int(reply.token_id) if reply.token_id else None,
            "block": reply.block or None, "confirmations": reply.confirmations,
            "required_confirmations": info.confirmations, "relayed": False}


async def relay(d: ChainDeps, record: JobRecord, claim_token: str | None) -> tuple[dict[str, Any], int]:
    """Asks the minter (through the broker) to relay the job's mint and waits a little for the outcome."""
    info = await d.minter.info()
    if not info.relay:
        raise ApiError(409, "relay_off", "relay: this service has no relayer key; send the job's `mint.tx` from a "
                       "wallet", "relay")
    if not claim_token:
        raise ApiError(403, "claim_required", "claim_token: a relayed mint needs the claim_token answered to the "
                       "submitter by POST /v1/jobs; or mint from a wallet (the job's `mint.tx`)", "claim_token")
    if not d.claims.check(record.job_id, claim_token):
        raise ApiError(403, "claim_mismatch", "claim_token: not this job's claim token; only the one who "
                       "submitted the job can ask for a relayed mint", "claim_token")
    base = {"job_id": record.job_id, "token_id": None, "block": None, "confirmations": 0,
            "required_confirmations": info.confirmations, "relayed": True}
    if record.stage == jobs_pb2.STAGE_MINTED:
        mint = await mint_of(d.store, record.job_id)
        return {**base, "stage": "minted", "state": "minted", "tx_hash": mint.tx_hash if mint else None,
                "token_id": mint.token_id if mint else None, "block": mint.block if mint else None}, 200
    if record.stage != jobs_pb2.STAGE_PINNED:
        raise ApiError(409, "not_pinned", f"the job is {stage_name(record.stage)}, not pinned yet: nothing to "
                       "relay", "job_id")
    outcome = await relay_outcome(d.store, record.job_id)
    if outcome is None or outcome.state != "sent":
        if d.broker is None:
            raise ApiError(503, "unavailable", "relay: the broker is not reachable; retry in a moment", "relay",
                           {"Retry-After": "5"})
        asked = time.time()
        await set_relay_outcome(d.store, record.job_id, "queued")
        stamp = Timestamp()
        stamp.GetCurrentTime()
        request = broker_pb2.RelayRequest(job_id=record.job_id, wallet=record.wallet,
                                          token_uri=record.state.token_uri, request_id=uuid.uuid4().hex,
                                          requested_at=stamp)
        try:
            await d.broker.publish(d.broker.topology.jobs_exchange, "relay", request, message_id=request.request_id)
        except BrokerUnavailable:
            raise ApiError(503, "unavailable", "relay: the broker is not reachable; retry in a moment", "relay",
                           {"Retry-After": "5"}) from None
        outcome = await _wait_outcome(d, record.job_id, asked)
    if outcome is not None and outcome.state == "failed":
        headers = {"Retry-After": "3600"} if outcome.http_status == 429 else None
        raise ApiError(outcome.http_status or 409, outcome.code or "relay_failed", outcome.message or "relay failed",
                       outcome.field or "relay", headers)
    if outcome is not None and outcome.state == "sent":
        return {**base, "stage": "pinned", "state": "pending", "tx_hash": outcome.tx_hash}, 202
    return {**base, "stage": "pinned", "state": "queued", "tx_hash": None}, 202


async def _wait_outcome(d: ChainDeps, job_id: str, asked: float) -> Any:
    deadline = time.monotonic() + d.relay_wait_seconds
    delay = 0.05
    while True:
        outcome = await relay_outcome(d.store, job_id)
        if outcome is not None and outcome.state != "queued" and outcome.updated_at >= asked:
            return outcome
        if time.monotonic() >= deadline:
            return outcome if outcome is not None and outcome.state == "sent" else None
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.5)
