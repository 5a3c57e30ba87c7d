"""Status's outbound gRPC lines: the renderer replicas' previews (renderer_channel) and the minter (MinterClient).

The line to the minter (MinterService over gRPC): the chain's description, the vouchers of pinned jobs,
the check of a reported transaction. Status holds no key: a voucher is signed by the minter and kept here only
while it has at least half its validity left (the minter steps deadlines by half the validity, so within a step
every replica and every read gets the same voucher); a page of pinned jobs costs one SignVouchers call.
A minter that does not answer leaves `mint` null on a job (the job is still served) and answers 503 to a mint.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

import grpc

from mintpipe.runtime.log import get_logger
from mintpipe.v1 import jobs_pb2, minter_pb2, minter_pb2_grpc
from status.jobs.records import JobRecord

log = get_logger("status.minter")
CACHE = 8192
TIMEOUT = 5.0
PREVIEW_TIMEOUT = 5.0  # seconds; a preview takes ~25 ms, so this only bounds a wedged replica


def renderer_channel(target: str) -> grpc.aio.Channel:
    """A channel that spreads calls over every address `target` resolves to (round_robin), waiting a moment
    for a replica to be ready rather than failing at once while one restarts (status.bridge.preview's RenderPreview)."""
    config = {"loadBalancingConfig": [{"round_robin": {}}],
              "methodConfig": [{"name": [{"service": "mintpipe.v1.RendererService"}], "waitForReady": True,
                                "timeout": f"{PREVIEW_TIMEOUT:g}s"}]}
    return grpc.aio.insecure_channel(target, options=[("grpc.service_config", json.dumps(config)),
                                                      ("grpc.enable_retries", 1)])


class MinterUnavailable(Exception):
    """The minter did not answer (or the chain node behind it did not)."""


def _key(record: JobRecord) -> tuple[str, str, str]:
    return record.job_id, record.wallet, record.state.token_uri


class MinterClient:
    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])
        self.stub = minter_pb2_grpc.MinterServiceStub(self.channel)
        self._info: minter_pb2.ChainInfo | None = None
        self._mints: OrderedDict[tuple[str, str, str], tuple[jobs_pb2.MintReady, float]] = OrderedDict()
        self.reachable = False

    async def close(self) -> None:
        await self.channel.close()

    async def info(self) -> minter_pb2.ChainInfo:
        if self._info is None:
            try:
                self._info = await self.stub.GetChain(minter_pb2.GetChainRequest(), timeout=TIMEOUT)
                self.reachable = True
            except grpc.aio.AioRpcError as exc:
                self.reachable = False
                raise MinterUnavailable(exc.details() or exc.code().name) from None
        return self._info

    async def healthy(self) -> bool:
        """A fresh GetChain (the description may change when a minter is redeployed)."""
        try:
            self._info = await self.stub.GetChain(minter_pb2.GetChainRequest(), timeout=2.0)
            self.reachable = True
        except grpc.aio.AioRpcError:
            self.reachable = False
        return self.reachable

    async def chain_json(self) -> dict[str, Any]:
        info = await self.info()
        return {"chain_id": info.chain_id, "contract": info.contract, "rpc_url": info.public_rpc_url or None,
                "abi": json.loads(info.abi_json)}

    def _cached(self, record: JobRecord, now: float) -> jobs_pb2.MintReady | None:
        hit = self._mints.get(_key(record))
        if hit is None or hit[1] <= now:
            return None
        self._mints.move_to_end(_key(record))
        return hit[0]

    async def prefetch(self, records: list[JobRecord]) -> None:
        """Signs every pinned job's voucher of a page in one call (the ones not cached)."""
        now = time.time()
        todo = [r for r in records if _mintable(r) and self._cached(r, now) is None]
        if not todo:
            return
        try:
            info = await self.info()
            reply = await self.stub.SignVouchers(minter_pb2.SignVouchersRequest(jobs=[
                minter_pb2.VoucherFor(job_id=r.job_id, wallet=r.wallet, token_uri=r.state.token_uri) for r in todo]),
                timeout=TIMEOUT)
        except (grpc.aio.AioRpcError, MinterUnavailable) as exc:
            log.warning("minter unreachable: jobs served without a voucher", error=str(exc)[:200])
            return
        half = max(info.voucher_seconds // 2, 1)
        for record, ready in zip(todo, reply.mints, strict=True):
            self._mints[_key(record)] = (ready, ready.voucher.deadline - half)
        while len(self._mints) > CACHE:
            self._mints.popitem(last=False)

    async def mint_for(self, record: JobRecord) -> jobs_pb2.MintReady | None:
        """What a wallet needs to mint a pinned job; None for any other stage (or while the minter is away)."""
        if not _mintable(record):
            return None
        cached = self._cached(record, time.time())
        if cached is None:
            await self.prefetch([record])
            cached = self._cached(record, time.time())
        return cached

    async def replicas(self) -> list[dict[str, Any]] | None:
        """The minter replicas heard from in the last minute, and which one watches and which one sends; None when
        no minter answers."""
        try:
            reply = await self.stub.ListReplicas(minter_pb2.ListReplicasRequest(), timeout=TIMEOUT)
        except grpc.aio.AioRpcError:
            return None
        return [{"name": r.name, "watching": r.watching, "sending": r.sending, "relayer": r.relayer or None,
                 "head": r.head, "started_at": r.started_at, "seen_s_ago": round(max(time.time() - r.seen_at, 0), 1)}
                for r in reply.replicas]

    async def verify(self, record: JobRecord, tx_hash: str) -> minter_pb2.VerifyMintResponse:
        try:
            return await self.stub.VerifyMint(minter_pb2.VerifyMintRequest(
                job_id=record.job_id, wallet=record.wallet, token_uri=record.state.token_uri, tx_hash=tx_hash),
                timeout=30)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise ValueError(exc.details()) from None
            raise MinterUnavailable(exc.details() or exc.code().name) from None


def _mintable(record: JobRecord) -> bool:
    return record.stage == jobs_pb2.STAGE_PINNED and bool(record.state.token_uri)
