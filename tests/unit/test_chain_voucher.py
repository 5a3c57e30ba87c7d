"""Vouchers without a node: job ids as bytes32 both ways, deadlines that stay put between reads and are
re-signed once passed, signatures that recover to the signer, and chain settings that refuse to start."""

from __future__ import annotations

import uuid

import pytest
from eth_account import Account
from pydantic import ValidationError

from minter.chain import Chain
from minter.settings import MinterSettings
from mintpipe.chain import Domain, Voucher, bytes32_to_job_id, job_id_to_bytes32, recover_voucher_signer, sign_voucher
from status.settings import StatusSettings

pytestmark = pytest.mark.unit
KEY = "0x" + "11" * 32
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_job_id_round_trips_through_bytes32_and_rejects_others() -> None:
    job_id = uuid.uuid4().hex
    raw = job_id_to_bytes32(job_id)
    assert len(raw) == 32 and raw[:16] == b"\0" * 16 and bytes32_to_job_id(raw) == job_id
    assert bytes32_to_job_id(b"\1" * 32) is None
    with pytest.raises(ValueError):
        job_id_to_bytes32("abc")


def test_signature_recovers_to_the_signer_and_changes_with_every_field_and_domain() -> None:
    domain = Domain("mintpipe", 31337, CONTRACT)
    voucher = Voucher(Account.create().address, "ipfs://bafy", uuid.uuid4().hex, 2_000_000_000)
    signature = sign_voucher(KEY, domain, voucher)
    assert recover_voucher_signer(domain, voucher, signature) == Account.from_key(KEY).address
    assert sign_voucher(KEY, domain, voucher) == signature  # deterministic (RFC 6979)
    variants = [Voucher(voucher.to, "ipfs://other", voucher.job_id, voucher.deadline),
                Voucher(voucher.to, voucher.token_uri, voucher.job_id, voucher.deadline + 1)]
    assert all(sign_voucher(KEY, domain, v) != signature for v in variants)
    assert sign_voucher(KEY, Domain("mintpipe", 1, CONTRACT), voucher) != signature


def chain(**overrides: object) -> Chain:
    settings = MinterSettings(chain_rpc_url="http://127.0.0.1:9", chain_contract=CONTRACT, chain_signer_key=KEY,
                              chain_voucher_seconds=3600, **overrides)
    return Chain(settings)  # no node needed to sign


def test_deadline_is_stable_within_a_step_and_always_leaves_half_the_validity() -> None:
    c = chain()
    base = 1_800_000_000  # a multiple of the 1800 s step
    assert c.deadline(base) == c.deadline(base + 1799) == base + 3600  # every read in a step: one voucher
    assert c.deadline(base + 1800) == base + 5400
    for now in range(base, base + 7200, 97):
        assert now + 1800 <= c.deadline(now) <= now + 3600
    # Once a deadline has passed, the next read gets a later one (a fresh signature).
    first = c.deadline(base)
    assert c.deadline(first + 1) > first


def test_chain_settings_name_what_is_missing_or_wrong() -> None:
    with pytest.raises(ValidationError, match="chain_contract"):
        MinterSettings(chain_rpc_url="http://127.0.0.1:9", chain_signer_key=KEY)
    with pytest.raises(ValidationError, match="chain_signer_key"):
        MinterSettings(chain_rpc_url="http://127.0.0.1:9", chain_contract=CONTRACT)
    with pytest.raises(ValidationError, match="chain_contract"):
        MinterSettings(chain_rpc_url="http://127.0.0.1:9", chain_contract="0x1234", chain_signer_key=KEY)
    with pytest.raises(ValidationError, match="must differ"):
        MinterSettings(chain_rpc_url="http://127.0.0.1:9", chain_contract=CONTRACT, chain_signer_key=KEY,
                       chain_relayer_key=KEY)
    # Status holds no key and knows no node: a chain is a minter to ask, or none.
    assert StatusSettings().minter_target is None
    assert not any(name.startswith("chain_") for name in StatusSettings.model_fields)
    assert "11" * 32 not in repr(chain().settings)  # the key is a secret: not in reprs (so not in logs)
