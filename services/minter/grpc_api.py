"""MinterService over gRPC: what status asks the chain stage (the chain's description, vouchers, a reported
transaction's check). Relays do not come this way: they go through the broker (minter.runtime)."""

from __future__ import annotations

import grpc
from web3.exceptions import Web3Exception

from minter.chain import Chain, JobRef, MintProblem
from minter.store import MinterStore
from minter.watcher import ChainWatcher
from mintpipe.core.stages import is_job_id
from mintpipe.runtime.log import get_logger
from mintpipe.v1 import minter_pb2, minter_pb2_grpc

log = get_logger("minter.grpc")
MAX_BATCH = 500


def _job(request: minter_pb2.VoucherFor | minter_pb2.VerifyMintRequest) -> JobRef | str:
    """The job a request names, or what is wrong with it (field first)."""
    from web3 import Web3

    if not is_job_id(request.job_id):
        return "job_id: must be 32 lowercase hex digits"
    if not Web3.is_address(request.wallet):
        return "wallet: not an address"
    if not request.token_uri.startswith("ipfs://") or len(request.token_uri) > 300:
        return "token_uri: must be an ipfs:// URI"
    return JobRef(request.job_id, Web3.to_checksum_address(request.wallet), request.token_uri)


class MinterService(minter_pb2_grpc.MinterServiceServicer):
    def __init__(self, chain: Chain, watcher: ChainWatcher, relay_on: bool, relayer_address: str = "",
                 store: MinterStore | None = None) -> None:
        self.chain, self.watcher, self.store = chain, watcher, store
        self.relay_on, self.relayer_address = relay_on, relayer_address

    async def GetChain(self, request: minter_pb2.GetChainRequest,
                       context: grpc.aio.ServicerContext) -> minter_pb2.ChainInfo:
        s = self.chain.settings
        return minter_pb2.ChainInfo(chain_id=self.chain.chain_id, contract=self.chain.address,
                                    public_rpc_url=s.chain_public_rpc_url or "", abi_json=self.chain.abi_json(),
                                    confirmations=self.chain.confirmations, relay=self.relay_on,
                                    voucher_seconds=s.chain_voucher_seconds, signer=self.chain.signer_address,
                                    relayer=self.relayer_address)

    async def ListReplicas(self, request: minter_pb2.ListReplicasRequest,
                           context: grpc.aio.ServicerContext) -> minter_pb2.ListReplicasResponse:
        rows = await self.store.replicas() if self.store is not None else []
        return minter_pb2.ListReplicasResponse(replicas=[minter_pb2.MinterReplica(
            name=r["name"], watching=bool(r["watching"]), sending=bool(r["sending"]), relayer=r["relayer"],
            head=r["head"], started_at=r["started_at"], seen_at=r["seen_at"]) for r in rows])

    async def SignVouchers(self, request: minter_pb2.SignVouchersRequest,
                           context: grpc.aio.ServicerContext) -> minter_pb2.SignVouchersResponse:
        if len(request.jobs) > MAX_BATCH:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"jobs: at most {MAX_BATCH} at once")
        refs = []
        for i, item in enumerate(request.jobs):
            job = _job(item)
            if isinstance(job, str):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"jobs[{i}].{job}")
            refs.append(job)
        return minter_pb2.SignVouchersResponse(mints=[self.chain.mint_ready(job) for job in refs])

    async def VerifyMint(self, request: minter_pb2.VerifyMintRequest,
                         context: grpc.aio.ServicerContext) -> minter_pb2.VerifyMintResponse:
        job = _job(request)
        if isinstance(job, str):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, job)
        tx_hash = request.tx_hash.lower()
        try:
            state, mint = await self.chain.verify(job, tx_hash)
            if mint is None:
                return minter_pb2.VerifyMintResponse(state=state, tx_hash=tx_hash)
            state, confirmations = await self.watcher.verified(mint)
        except MintProblem as problem:
            return minter_pb2.VerifyMintResponse(tx_hash=tx_hash, problem=minter_pb2.MintProblemInfo(
                http_status=problem.status, code=problem.code, message=problem.message, field=problem.field or ""))
        except (Web3Exception, OSError, TimeoutError) as exc:
            log.warning("chain node unreachable while verifying", job_id=request.job_id, error=type(exc).__name__)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the chain node does not answer right now")
        return minter_pb2.VerifyMintResponse(state=state, tx_hash=mint.tx_hash, token_id=str(mint.token_id),
                                             block=mint.block, confirmations=confirmations)
