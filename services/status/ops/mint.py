"""An operator's "re-send a mint verification": check a job's mint transaction on chain again, now.

For a pinned job whose mint was reported (or relayed) but is not minted: the watcher was down or behind, a
reported transaction was still pending when the wallet reported it, or a collector sends the hash to support.
The transaction is the one given, else the relayed one status knows. The check is the wallet report's own
(status.minting.verified, by the minter): same rules, same answers, and a confirmed mint makes the job minted.
"""

from __future__ import annotations

from typing import Any

from mintpipe.core.stages import stage_name
from mintpipe.v1 import jobs_pb2
from status.clients import MinterUnavailable
from status.errors import ApiError
from status.jobs.mints import mint_of, relay_outcome
from status.jobs.records import JobRecord, iso
from status.minting import ChainDeps, verified


async def _confirmations(deps: ChainDeps) -> int | None:
    try:
        return (await deps.minter.info()).confirmations
    except MinterUnavailable:
        return None


async def known_mint(deps: ChainDeps | None, job_id: str) -> dict[str, Any] | None:
    """The mint transaction the service knows for a job (for the job's page), or None."""
    if deps is None:
        return None
    mint = await mint_of(deps.store, job_id)
    if mint is not None:
        return {"tx_hash": mint.tx_hash, "source": "seen on chain", "block": mint.block, "token_id": mint.token_id,
                "confirmed": True, "minted_at": iso(mint.minted_at) if mint.minted_at else None,
                "required_confirmations": await _confirmations(deps)}
    relay = await relay_outcome(deps.store, job_id)
    if relay is not None and relay.tx_hash:
        source = "reported" if relay.state == "reported" else "relayed"
        return {"tx_hash": relay.tx_hash, "source": source, "block": None, "token_id": None, "confirmed": False,
                "minted_at": None, "required_confirmations": await _confirmations(deps)}
    return None


async def reverify(deps: ChainDeps | None, record: JobRecord, tx_hash: str | None) -> dict[str, Any]:
    if deps is None:
        raise ApiError(409, "no_chain", "this service runs without a chain (no minter configured)", None)
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
    outcome = await verified(deps, record, tx, source="admin")
    return {"job_id": record.job_id, "tx_hash": outcome["tx_hash"],
            "source": "given" if tx_hash else known["source"], "state": outcome["state"], "stage": outcome["stage"],
            "token_id": outcome["token_id"], "block": outcome["block"], "confirmations": outcome["confirmations"],
            "required_confirmations": outcome["required_confirmations"]}
