"""A job as clients see it: its JSON document (HTTP) and its protobuf (gRPC), each with the mint fields (`mint`
on a pinned job: what a wallet needs to mint it; `token_id`, `tx_hash`, `block`, `minted_at` on a minted one).

The voucher is the minter's (status.clients.MinterClient signs through it), the confirmed mint is the one
status.jobs.mints keeps from the minter's events. Without a chain (no minter configured) the fields are null or
unset. No gRPC client is imported here: the chain side is any object with a `minter` (prefetch, mint_for) and a
`store`, as status.minting.ChainDeps has.
"""

from __future__ import annotations

from typing import Any, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from mintpipe.v1 import jobs_pb2
from status.jobs.mints import mint_of
from status.jobs.records import JobRecord, iso
from status.jobs.store import JobStore


class VoucherSource(Protocol):
    """Signed vouchers of pinned jobs (status.clients.MinterClient)."""

    async def prefetch(self, records: list[JobRecord]) -> None: ...

    async def mint_for(self, record: JobRecord) -> jobs_pb2.MintReady | None: ...


class MintSide(Protocol):
    """Where the view reads the chain fields (status.minting.ChainDeps)."""

    @property
    def minter(self) -> VoucherSource: ...

    @property
    def store(self) -> JobStore: ...


def mint_json(ready: jobs_pb2.MintReady) -> dict[str, Any]:
    v = ready.voucher
    return {"chain_id": ready.chain_id, "contract": ready.contract,
            "voucher": {"to": v.to, "token_uri": v.token_uri, "job_id": v.job_id, "deadline": v.deadline},
            "signature": ready.signature, "tx": {"to": ready.tx.to, "data": ready.tx.data, "value": ready.tx.value}}


class JobView:
    """A job's JSON document and protobuf with its chain fields (null/unset without a chain)."""

    def __init__(self, deps: MintSide | None) -> None:
        self.deps = deps

    async def prefetch(self, records: list[JobRecord]) -> None:
        if self.deps is not None:
            await self.deps.minter.prefetch(records)

    async def _minted(self, record: JobRecord) -> dict[str, Any]:
        empty = {"token_id": None, "tx_hash": None, "block": None, "minted_at": None}
        if self.deps is None or record.stage != jobs_pb2.STAGE_MINTED:
            return empty
        mint = await mint_of(self.deps.store, record.job_id)
        if mint is None:
            return empty
        return {"token_id": mint.token_id, "tx_hash": mint.tx_hash, "block": mint.block,
                "minted_at": iso(mint.minted_at) if mint.minted_at else None}

    async def doc(self, record: JobRecord) -> dict[str, Any]:
        doc = record.to_json()
        ready = await self.deps.minter.mint_for(record) if self.deps else None
        doc["mint"] = mint_json(ready) if ready is not None else None
        doc.update(await self._minted(record))
        return doc

    async def proto(self, record: JobRecord) -> jobs_pb2.Job:
        job = record.to_proto()
        if self.deps is None:
            return job
        ready = await self.deps.minter.mint_for(record)
        if ready is not None:
            job.mint.CopyFrom(ready)
        minted = await self._minted(record)
        if minted["token_id"] is not None:
            job.token_id, job.tx_hash, job.block = str(minted["token_id"]), minted["tx_hash"], minted["block"]
            mint = await mint_of(self.deps.store, record.job_id)
            if mint and mint.minted_at:
                stamp = Timestamp()
                stamp.FromNanoseconds(int(mint.minted_at * 1e9))
                job.minted_at.CopyFrom(stamp)
        return job
