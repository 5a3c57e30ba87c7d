"""An operator's "re-send a mint verification": check a job's mint transaction on chain again, now.

For a pinned job whose mint was reported (or relayed, or seen by the watcher) but is not confirmed: the
watcher was down or behind, a reported transaction was still pending when the wallet reported it (a pending
transaction is not recorded), or a collector sends the hash to support. The transaction is the one given, else
the one the chain store knows (a mint seen in a block, then a relayed one). The check is the wallet report's
own (status.chain_api.verified): same rules, same answers, and a confirmed mint makes the job minted.
"""

from __future__ import annotations

from typing import Any

from mintpipe.events import stage_name
from mintpipe.v1 import jobs_pb2
from status.chain_api import ChainDeps, mint_errors, verified
from status.http_errors import ApiError
from status.records import JobRecord, iso


async def known_mint(deps: ChainDeps | None, job_id: str) -> dict[str, Any] | None:
    """The mint transaction the service knows for a job (for the job's page), or None."""
    if deps is None:
        return None
    mint = await deps.chain_store.mint(job_id)
    if mint is not None:
        return {"tx_hash": mint.tx_hash, "source": "seen on chain", "block": mint.block, "token_id": mint.token_id,
                "confirmed": mint.confirmed, "minted_at": iso(mint.minted_at) if mint.minted_at else None,
                "required_confirmations": deps.chain.confirmations}
    relay = await deps.chain_store.relay(job_id)
    if relay is not None:
        return {"tx_hash": relay.tx_hash, "source": "relayed", "block": None, "token_id": None, "confirmed": False,
                "minted_at": None, "required_confirmations": deps.chain.confirmations}
    return None


async def reverify(deps: ChainDeps | None, record: JobRecord, tx_hash: str | None) -> dict[str, Any]:
    if deps is None:
        raise ApiError(409, "no_chain", "this service runs without a chain (MINTPIPE_CHAIN_RPC_URL unset)", None)
    known = await known_mint(deps, record.job_id)
    if record.stage == jobs_pb2.STAGE_MINTED and known and known["confirmed"]:
        raise ApiError(409, "already_minted", f"the job is already minted as token {known['token_id']} "
                       f"(transaction {known['tx_hash']}): nothing to verify", "job_id")
    if record.stage != jobs_pb2.STAGE_PINNED:
        raise ApiError(409, "not_pinned", f"the job is {stage_name(record.stage)}: only a pinned job has a mint to "
                       "verify", "job_id")
    tx = tx_hash or (known["tx_hash"] if known else None)
    if not tx:
        raise ApiError(409, "no_mint_tx", "tx_hash: no mint transaction is known for this job; give the one the "
                       "wallet sent", "tx_hash")
    with mint_errors(record.job_id):
        outcome = await verified(deps, record, tx)
    return {"job_id": record.job_id, "tx_hash": outcome.tx_hash, "source": "given" if tx_hash else known["source"],
            "state": outcome.state, "stage": "minted" if outcome.state == "minted" else stage_name(record.stage),
            "token_id": outcome.token_id, "block": outcome.block, "confirmations": outcome.confirmations,
            "required_confirmations": deps.chain.confirmations}
