"""The chain's HTTP face: `GET /v1/chain`, `POST /v1/jobs/{job_id}/mint`, and the model of the mint fields every
job document carries (`mint` on a pinned job; `token_id`, `tx_hash`, `block`, `minted_at` on a minted one: filled
by status.jobs.view).

Status holds no key and speaks to no chain node: what a report or a relay does is status.minting's (the minter
over gRPC and the broker, its answers as events). Relays and reported transactions are rate-limited per client
address, shared by every replica on PostgreSQL, before anything costly happens.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mintpipe.limits.memory import RateLimiter
from status.clients import MinterUnavailable
from status.errors import ApiError, ErrorOut
from status.jobs.records import JobRecord
from status.minting import ChainDeps, minter_unavailable, relay, verified


class MintVoucherOut(BaseModel):
    to: str
    token_uri: str
    job_id: str = Field(description="bytes32, 0x-hex: the job id left-padded with zeros")
    deadline: int = Field(description="unix seconds; past it, read the job again for a fresh voucher")


class MintTxOut(BaseModel):
    to: str
    data: str
    value: str


class MintOut(BaseModel):
    chain_id: int
    contract: str
    voucher: MintVoucherOut
    signature: str
    tx: MintTxOut = Field(description="ready for eth_sendTransaction (add `from`)")


class ChainOut(BaseModel):
    chain_id: int
    contract: str
    rpc_url: str | None = Field(description="a public RPC URL a wallet may add (null when none is configured)")
    abi: list[dict[str, Any]]


class MintBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"tx_hash": "0x" + "ab" * 32}, {"relay": True, "claim_token": "the claim_token of POST /v1/jobs"}]})
    tx_hash: str | None = Field(None, max_length=100, description="the mint transaction the wallet sent")
    relay: bool = Field(False, description="ask the service to send the mint itself and pay the gas")
    claim_token: str | None = Field(None, max_length=200, description="with relay: the claim_token answered to "
                                    "the submitter by POST /v1/jobs")

    @model_validator(mode="after")
    def _one_of(self) -> MintBody:
        if bool(self.tx_hash) == self.relay:
            raise ValueError("give either tx_hash or relay: true")
        return self


class MintReport(BaseModel):
    job_id: str
    stage: str
    state: str = Field(description="minted | confirming (mined, waiting for confirmations) | pending (sent, not "
                       "mined) | queued (a relay waiting for the relayer)")
    tx_hash: str | None
    token_id: int | None
    block: int | None
    confirmations: int
    required_confirmations: int
    relayed: bool


async def _limited(limiter: RateLimiter | None, ip: str, what: str) -> None:
    if limiter is None:
        return
    wait = await limiter.take(ip)
    if wait > 0:
        raise ApiError(429, "rate_limited", f"too many {what} from this address; retry in {math.ceil(wait)} s",
                       None, {"Retry-After": str(math.ceil(wait))})


def create_chain_router(deps: ChainDeps | None, known_job: Callable[[str], Awaitable[JobRecord]],
                        client_ip: Callable[[Request], str]) -> APIRouter:
    router = APIRouter()
    errors: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (400, 403, 404, 409, 422, 429, 503)}

    def need_chain(status: int) -> ChainDeps:
        # Not a 5xx: nothing is broken, this deployment just has no chain (a 404 for the chain's description,
        # a 409 for a mint: the job cannot be minted here).
        if deps is None:
            raise ApiError(status, "no_chain", "this service runs without a chain (no minter configured: "
                           "STATUS_MINTER_TARGET unset)", None)
        return deps

    @router.get("/v1/chain", response_model=ChainOut, responses=errors)
    async def chain_info() -> dict[str, Any]:
        d = need_chain(404)
        try:
            return await d.minter.chain_json()
        except MinterUnavailable as exc:
            raise minter_unavailable("", exc) from None

    @router.post("/v1/jobs/{job_id}/mint", response_model=MintReport, responses={202: {"model": MintReport},
                                                                                  **errors})
    async def report_mint(job_id: str, body: MintBody, request: Request, response: Response) -> dict[str, Any]:
        d = need_chain(409)
        ip = client_ip(request)
        await _limited(d.relay_limiter if body.relay else d.report_limiter, ip,
                       "relay requests" if body.relay else "reported transactions")
        record = await known_job(job_id)
        try:
            if body.relay:
                doc, code = await relay(d, record, body.claim_token)
            else:
                doc = await verified(d, record, body.tx_hash or "")
                code = 200 if doc["state"] == "minted" else 202
        except MinterUnavailable as exc:
            raise minter_unavailable(job_id, exc) from None
        response.status_code = code
        return doc

    return router


def register_chain_metrics(registry: Any, deps: ChainDeps | None) -> None:
    """The minter's own metrics live on its port (minter.__main__); the bridge says whether it reaches it."""
    if deps is None:
        return
    from prometheus_client import Gauge

    minter = deps.minter
    Gauge("mintpipe_minter_reachable", "1 while the bridge's last call to the minter was answered",
          registry=registry).set_function(lambda: 1.0 if minter.reachable else 0.0)
