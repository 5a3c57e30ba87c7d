"""The collection contract on a real node (anvil): what mints, what reverts and with which error."""

from __future__ import annotations

import time
import uuid

import pytest
from eth_abi import decode
from web3 import Web3
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from mintpipe.chain import ZERO_ADDRESS, Domain, artifact, bytes32_to_job_id, job_id_to_bytes32
from tests.support.chain import COLLECTION_NAME, TestChain

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(120)]

URI = "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def custom_error(name: str) -> tuple[bytes, list[str]]:
    entry = next(e for e in artifact()["abi"] if e["type"] == "error" and e["name"] == name)
    types = [i["type"] for i in entry["inputs"]]
    return Web3.keccak(text=f"{name}({','.join(types)})")[:4], types


def expect_revert(chain: TestChain, voucher, signature: bytes, name: str) -> tuple:
    """Calls mint and returns the decoded arguments of the custom error it reverts with."""
    sender = chain.address_of(chain.collector_keys[0])
    with pytest.raises(ContractCustomError) as caught:
        chain.contract.functions.mint(*voucher.mint_args(signature)).call({"from": sender})
    return error_args(caught.value, name)


def error_args(error: ContractCustomError, name: str) -> tuple:
    """The decoded arguments of custom error `name`, which `error` must carry."""
    data = bytes.fromhex(str(error.data).removeprefix("0x"))
    selector, types = custom_error(name)
    assert data[:4] == selector, f"reverted with {data[:4].hex()}, not {name}"
    values = decode(types, data[4:])
    return tuple(Web3.to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True))


def new_job() -> str:
    return uuid.uuid4().hex


def test_mint_with_good_voucher_goes_to_to_with_uri_and_events(chain: TestChain) -> None:
    to = chain.address_of(chain.collector_keys[1])
    job_id = new_job()
    voucher = chain.voucher(job_id, to, URI)
    # Sent by another account (a relayer): the token still goes to `to`.
    receipt = chain.mint(voucher, chain.sign(voucher), chain.relayer_key)
    assert receipt["status"] == 1
    transfers = chain.contract.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert len(transfers) == 1
    token_id = transfers[0]["args"]["tokenId"]
    assert transfers[0]["args"]["from"] == "0x" + "0" * 40 and transfers[0]["args"]["to"] == to
    updates = chain.contract.events.MetadataUpdate().process_receipt(receipt, errors=DISCARD)
    assert [u["args"]["_tokenId"] for u in updates] == [token_id]
    redeemed = chain.contract.events.VoucherRedeemed().process_receipt(receipt, errors=DISCARD)
    assert bytes32_to_job_id(redeemed[0]["args"]["jobId"]) == job_id
    assert redeemed[0]["args"]["signer"] == chain.address_of(chain.signer_key)
    assert chain.contract.functions.ownerOf(token_id).call() == to
    assert chain.contract.functions.tokenURI(token_id).call() == URI
    assert chain.contract.functions.tokenOfJob(job_id_to_bytes32(job_id)).call() == token_id
    print(f"gas used by one mint: {receipt['gasUsed']}")


def test_same_voucher_again_reverts_with_the_token_id(chain: TestChain) -> None:
    to = chain.address_of(chain.collector_keys[1])
    job_id = new_job()
    voucher = chain.voucher(job_id, to, URI)
    signature = chain.sign(voucher)
    receipt = chain.mint(voucher, signature)
    token_id = chain.contract.events.Transfer().process_receipt(receipt, errors=DISCARD)[0]["args"]["tokenId"]
    assert expect_revert(chain, voucher, signature, "JobAlreadyMinted") == (job_id_to_bytes32(job_id), token_id)
    # Another voucher for the same job (say, re-signed with a later deadline) is refused too.
    again = chain.voucher(job_id, to, URI, deadline=voucher.deadline + 60)
    expect_revert(chain, again, chain.sign(again), "JobAlreadyMinted")


def test_expired_voucher_reverts(chain: TestChain) -> None:
    voucher = chain.voucher(new_job(), chain.address_of(chain.collector_keys[1]), URI,
                            deadline=int(time.time()) - 3600)
    deadline, _now = expect_revert(chain, voucher, chain.sign(voucher), "VoucherExpired")
    assert deadline == voucher.deadline


def test_voucher_signed_by_another_key_reverts(chain: TestChain) -> None:
    voucher = chain.voucher(new_job(), chain.address_of(chain.collector_keys[1]), URI)
    stranger = chain.collector_keys[2]
    (recovered,) = expect_revert(chain, voucher, chain.sign(voucher, key=stranger), "InvalidVoucherSignature")
    assert recovered == chain.address_of(stranger)


@pytest.mark.parametrize("domain_change", ["chain", "contract", "name"])
def test_voucher_for_another_domain_reverts(chain: TestChain, domain_change: str) -> None:
    voucher = chain.voucher(new_job(), chain.address_of(chain.collector_keys[1]), URI)
    d = chain.domain
    other = {"chain": Domain(d.name, 1, d.contract),
             "contract": Domain(d.name, d.chain_id, "0x000000000000000000000000000000000000dEaD"),
             "name": Domain("another collection", d.chain_id, d.contract)}[domain_change]
    (recovered,) = expect_revert(chain, voucher, chain.sign(voucher, domain=other), "InvalidVoucherSignature")
    assert recovered != chain.address_of(chain.signer_key)


@pytest.mark.parametrize("field", ["to", "token_uri", "job_id", "deadline"])
def test_tampered_voucher_reverts(chain: TestChain, field: str) -> None:
    voucher = chain.voucher(new_job(), chain.address_of(chain.collector_keys[1]), URI)
    signature = chain.sign(voucher)
    changed = {"to": chain.address_of(chain.collector_keys[2]), "token_uri": URI + "x", "job_id": new_job(),
               "deadline": voucher.deadline + 1}[field]
    tampered = type(voucher)(**{**voucher.__dict__, field: changed})
    (recovered,) = expect_revert(chain, tampered, signature, "InvalidVoucherSignature")
    assert recovered != chain.address_of(chain.signer_key)


def test_malformed_signature_and_empty_uri_revert(chain: TestChain) -> None:
    voucher = chain.voucher(new_job(), chain.address_of(chain.collector_keys[1]), URI)
    assert expect_revert(chain, voucher, b"\x01" * 12, "InvalidVoucherSignature") == (ZERO_ADDRESS,)
    empty = chain.voucher(new_job(), chain.address_of(chain.collector_keys[1]), "")
    expect_revert(chain, empty, chain.sign(empty), "EmptyTokenURI")


def test_royalty_interfaces_and_signer_role(chain: TestChain) -> None:
    c = chain.contract.functions
    receiver, amount = c.royaltyInfo(1, 10_000).call()
    assert (receiver, amount) == (chain.address_of(chain.deployer_key), 500)
    for interface in ("0x80ac58cd", "0x5b5e139f", "0x49064906", "0x2a55205a", "0x7965db0b"):
        assert c.supportsInterface(bytes.fromhex(interface[2:])).call(), interface
    role = c.SIGNER_ROLE().call()
    assert c.hasRole(role, chain.address_of(chain.signer_key)).call()
    # Only the admin changes royalties; the change is an event.
    receipt = chain.send(c.setDefaultRoyalty(chain.address_of(chain.relayer_key), 250), chain.deployer_key)
    updated = chain.contract.events.DefaultRoyaltyUpdated().process_receipt(receipt, errors=DISCARD)
    assert updated[0]["args"]["feeNumerator"] == 250
    with pytest.raises(ContractCustomError):
        c.setDefaultRoyalty(chain.address_of(chain.relayer_key), 9000).call(
            {"from": chain.address_of(chain.collector_keys[0])})
    chain.send(c.setDefaultRoyalty(chain.address_of(chain.deployer_key), 500), chain.deployer_key)


def deploy_call(chain: TestChain, *, admin: str, signer: str) -> None:
    """Runs the collection's constructor with these admin and signer as an eth_call (nothing is deployed)."""
    deployer = chain.address_of(chain.deployer_key)
    factory = chain.w3.eth.contract(abi=artifact()["abi"], bytecode=artifact()["bytecode"])
    tx = factory.constructor(COLLECTION_NAME, "MPT", admin, signer, deployer, 500).build_transaction(
        {"from": deployer, "gas": 10_000_000})
    chain.w3.eth.call({"from": deployer, "data": tx["data"], "gas": tx["gas"]})


def test_deploying_with_zero_signer_or_admin_reverts(chain: TestChain) -> None:
    # Issue 20, defect 6: with signer address(0), every signature that fails to recover (recovering to
    # address(0)) would have been a signer's.
    deployer = chain.address_of(chain.deployer_key)
    signer = chain.address_of(chain.signer_key)
    with pytest.raises(ContractCustomError) as caught:
        deploy_call(chain, admin=deployer, signer=ZERO_ADDRESS)
    assert error_args(caught.value, "ZeroSigner") == ()
    with pytest.raises(ContractCustomError) as caught:
        deploy_call(chain, admin=ZERO_ADDRESS, signer=signer)
    assert error_args(caught.value, "ZeroAdmin") == ()
    deploy_call(chain, admin=deployer, signer=signer)  # the same constructor call with both set succeeds


def test_granting_signer_role_to_zero_address_reverts(chain: TestChain) -> None:
    c = chain.contract.functions
    role = c.SIGNER_ROLE().call()
    admin = chain.address_of(chain.deployer_key)
    with pytest.raises(ContractCustomError) as caught:
        c.grantRole(role, ZERO_ADDRESS).call({"from": admin})
    assert error_args(caught.value, "ZeroSigner") == ()
    receipt = chain.send(c.grantRole(role, ZERO_ADDRESS), chain.deployer_key)
    assert receipt["status"] == 0
    assert not c.hasRole(role, ZERO_ADDRESS).call()
    # Other roles may still go to address(0) (harmless: nobody sends from it), and real signers may be added.
    stranger = chain.address_of(chain.collector_keys[2])
    assert chain.send(c.grantRole(role, stranger), chain.deployer_key)["status"] == 1
    assert chain.send(c.revokeRole(role, stranger), chain.deployer_key)["status"] == 1


def role_member_slot(chain: TestChain, role: bytes, member: str) -> int:
    """The storage slot of AccessControl's `_roles[role].hasRole[member]`, found by trying the base slots
    (the member must hold the role)."""
    def slot(base: int, account: str) -> int:
        roles_entry = Web3.keccak(role + base.to_bytes(32, "big"))
        return int.from_bytes(Web3.keccak(bytes.fromhex(account[2:]).rjust(32, b"\0") + roles_entry), "big")

    holder = chain.address_of(chain.signer_key)
    for base in range(32):
        if chain.w3.eth.get_storage_at(chain.address, slot(base, holder)) == (1).to_bytes(32, "big"):
            return slot(base, member)
    raise AssertionError("AccessControl's _roles slot not found")


JUNK_SIGNATURES = {
    "zeros": b"\0" * 65,  # v = 0: ecrecover fails
    "r_zero": b"\0" * 32 + b"\x01" * 32 + b"\x1b",  # v = 27, r = 0 (no curve point): ecrecover returns 0
    "high_s": b"\x01" * 32 + b"\xff" * 32 + b"\x1c",  # s above n/2 (refused by OpenZeppelin's ECDSA)
}


@pytest.mark.parametrize("junk", sorted(JUNK_SIGNATURES))
def test_junk_signature_does_not_mint_even_if_zero_address_were_a_signer(chain: TestChain, junk: str) -> None:
    c = chain.contract.functions
    role = c.SIGNER_ROLE().call()
    voucher = chain.voucher(new_job(), chain.address_of(chain.collector_keys[1]), URI)
    signature = JUNK_SIGNATURES[junk]
    assert len(signature) == 65
    minted = c.totalMinted().call()
    assert expect_revert(chain, voucher, signature, "InvalidVoucherSignature") == (ZERO_ADDRESS,)
    # Defence in depth: address(0) given SIGNER_ROLE behind AccessControl's back (anvil writes the storage)
    # still recovers nothing from junk.
    snapshot = chain.snapshot()
    try:
        chain.rpc("anvil_setStorageAt", chain.address, hex(role_member_slot(chain, role, ZERO_ADDRESS)),
                  "0x" + (1).to_bytes(32, "big").hex())
        assert c.hasRole(role, ZERO_ADDRESS).call()
        assert expect_revert(chain, voucher, signature, "InvalidVoucherSignature") == (ZERO_ADDRESS,)
        assert chain.mint(voucher, signature)["status"] == 0
        assert c.tokenOfJob(job_id_to_bytes32(voucher.job_id)).call() == 0
        assert c.totalMinted().call() == minted
    finally:
        chain.revert(snapshot)
    assert not c.hasRole(role, ZERO_ADDRESS).call()
