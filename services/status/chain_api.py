"""The chain's HTTP face: `GET /v1/chain`, `POST /v1/jobs/{job_id}/mint`, and the mint fields every job
document carries (`mint` on a pinned job; `token_id`, `tx_hash`, `block`, `minted_at` on a minted one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from fastapi import APIRouter, Response
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ConfigDict, Field, model_validator
from web3.exceptions import Web3Exception

from mintpipe.events import stage_name
from mintpipe.log import get_logger
from mintpipe.v1 import jobs_pb2
from status.bus import JobBus
from status.chain import Chain, MintOutcome, MintProblem
from status.chain_store import ChainStore
from status.http_errors import ApiError, ErrorOut
from status.records import JobRecord, iso
from status.relayer import Relayer

log = get_logger("status.chain")


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
    rpc_url: str
    abi: list[dict[str, Any]]


class MintBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"tx_hash": "0x" + "ab" * 32},
                                                                               {"relay": True}]})
    tx_hash: str | None = Field(None, max_length=100, description="the mint transaction the wallet sent")
    relay: bool = Field(False, description="ask the service to send the mint itself and pay the gas")

    @model_validator(mode="after")
    def _one_of(self) -> MintBody:
        if bool(self.tx_hash) == self.relay:
            raise ValueError("give either tx_hash or relay: true")
        return self


class MintReport(BaseModel):
    job_id: str
    stage: str
    state: str = Field(description="minted | confirming (mined, waiting for confirmations) | pending (not mined)")
    tx_hash: str
    token_id: int | None
    block: int | None
    confirmations: int
    required_confirmations: int
    relayed: bool


@dataclass
class ChainDeps:
    chain: Chain
    chain_store: ChainStore
    relayer: Relayer | None
    bus: JobBus
    watcher: Any = None  # the ChainWatcher (health, metrics, poke)

    def poke(self) -> None:
        if self.watcher is not None:
            self.watcher.poke()


class JobView:
    """A job's JSON document and protobuf with its chain fields (null/unset without a chain)."""

    def __init__(self, deps: ChainDeps | None) -> None:
        self.deps = deps

    async def _minted(self, record: JobRecord) -> dict[str, Any]:
        empty = {"token_id": None, "tx_hash": None, "block": None, "minted_at": None}
        if self.deps is None or record.stage != jobs_pb2.STAGE_MINTED:
            return empty
        mint = await self.deps.chain_store.mint(record.job_id)
        if mint is None or not mint.confirmed:
            return empty
        return {"token_id": mint.token_id, "tx_hash": mint.tx_hash, "block": mint.block,
                "minted_at": iso(mint.minted_at) if mint.minted_at else None}

    async def doc(self, record: JobRecord) -> dict[str, Any]:
        doc = record.to_json()
        doc["mint"] = self.deps.chain.mint_object(record) if self.deps else None
        doc.update(await self._minted(record))
        return doc

    async def proto(self, record: JobRecord) -> jobs_pb2.Job:
        job = record.to_proto()
        if self.deps is None:
            return job
        ready = self.deps.chain.mint_proto(record)
        if ready is not None:
            job.mint.CopyFrom(ready)
        minted = await self._minted(record)
        if minted["token_id"] is not None:
            job.token_id, job.tx_hash, job.block = str(minted["token_id"]), minted["tx_hash"], minted["block"]
            mint = await self.deps.chain_store.mint(record.job_id)
            if mint and mint.minted_at:
                stamp = Timestamp()
                stamp.FromNanoseconds(int(mint.minted_at * 1e9))
                job.minted_at.CopyFrom(stamp)
        return job


@contextmanager
def mint_errors(job_id: str) -> Iterator[None]:
    """A mint's problems as API errors: a report that does not check out says why; a node that does not answer
    is a 503 to try again (never a 500)."""
    try:
        yield
    except MintProblem as problem:
        raise ApiError(problem.status, problem.code, problem.message, problem.field) from None
    except (Web3Exception, OSError, TimeoutError, aiohttp.ClientError) as exc:
        log.warning("chain node unreachable while checking a mint", job_id=job_id, error=type(exc).__name__)
        raise ApiError(503, "chain_unavailable", "the chain node does not answer right now; report the "
                       "transaction again in a minute (the watcher also finds it by itself)", None,
                       {"Retry-After": "30"}) from None


async def verified(d: ChainDeps, record: JobRecord, tx_hash: str) -> MintOutcome:
    """Checks a mint transaction on chain (status.chain.Chain.verify), wakes the watcher, and tells the job's
    watchers when it became minted. The one path for a wallet's report and an operator's re-verification."""
    outcome = await d.chain.verify(record, tx_hash)
    d.poke()
    if outcome.record is not None:
        d.bus.publish(outcome.record)
    return outcome


def create_chain_router(deps: ChainDeps | None, known_job: Callable[[str], Awaitable[JobRecord]]) -> APIRouter:
    router = APIRouter()
    errors: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (400, 404, 409, 422, 429, 503)}

    def need_chain(status: int) -> ChainDeps:
        # Not a 5xx: nothing is broken, this deployment just has no chain (a 404 for the chain's description,
        # a 409 for a mint: the job cannot be minted here).
        if deps is None:
            raise ApiError(status, "no_chain", "this service runs without a chain (MINTPIPE_CHAIN_RPC_URL unset)",
                           None)
        return deps

    @router.get("/v1/chain", response_model=ChainOut, responses=errors)
    async def chain_info() -> dict[str, Any]:
        return need_chain(404).chain.info()

    @router.post("/v1/jobs/{job_id}/mint", response_model=MintReport, responses={202: {"model": MintReport},
                                                                                  **errors})
    async def report_mint(job_id: str, body: MintBody, response: Response) -> dict[str, Any]:
        d = need_chain(409)
        record = await known_job(job_id)
        relayed = False
        with mint_errors(job_id):
            if body.relay:
                if d.relayer is None:
                    raise MintProblem(409, "relay_off", "relay: this service has no relayer key; send the job's "
                                      "`mint.tx` from a wallet", "relay")
                relay, _ = await d.relayer.relay(record)
                tx_hash, relayed = relay.tx_hash, True
            else:
                tx_hash = body.tx_hash or ""
            outcome = await verified(d, record, tx_hash)
        current = outcome.record or await known_job(job_id)
        response.status_code = 200 if outcome.state == "minted" else 202
        return {"job_id": job_id, "stage": stage_name(current.stage), "state": outcome.state,
                "tx_hash": outcome.tx_hash, "token_id": outcome.token_id, "block": outcome.block,
                "confirmations": outcome.confirmations, "required_confirmations": d.chain.confirmations,
                "relayed": relayed}

    return router


def register_chain_metrics(registry: Any, deps: ChainDeps | None) -> None:
    """Gauges read at scrape time: the relayer's balance (wei) and the watcher's view of the head."""
    if deps is None:
        return
    from prometheus_client import Gauge

    if deps.relayer is not None:
        relayer = deps.relayer
        Gauge("mintpipe_relayer_balance_wei", "the relayer account's balance at its last check",
              registry=registry).set_function(lambda: float(relayer.balance or 0))
    watcher = deps.watcher
    if watcher is not None:
        Gauge("mintpipe_chain_head_block", "the chain head the watcher last read",
              registry=registry).set_function(lambda: float(watcher.head))
        Gauge("mintpipe_chain_watcher_healthy", "1 while the watcher reaches the node",
              registry=registry).set_function(lambda: 1.0 if watcher.healthy else 0.0)
