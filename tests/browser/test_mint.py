"""Minting from the page on a real chain: the launcher's anvil with the collection deployed, the status service
verifying mints. The wallet is a provider injected into the page (EIP-6963) that forwards to anvil with one of
its dev accounts; without it, the page's relayed mint, sent by the launcher's minter, which needs the job's claim
token: only the browser that submitted the job holds it (localStorage mintpipe.claim.<job_id>)."""

from __future__ import annotations

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from mintpipe.chain import collection
from tests.browser.conftest import ADMIN_TOKEN, axe_violations, injected_wallet, quick_pinned_job

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def chain(system):
    info = httpx.get(f"{system.base_url}/v1/chain").json()
    w3 = Web3(Web3.HTTPProvider(info["rpc_url"], request_kwargs={"timeout": 30}))
    return info, w3, collection(w3, info["contract"])


def claim_kept(page, job_id: str) -> bool:
    return page.evaluate("id => localStorage.getItem('mintpipe.claim.' + id) !== null", job_id)


def minted_token(page) -> int:
    page.wait_for_selector("#minted:not([hidden]) h3:has-text('Minted: token #')", timeout=60_000)
    return int(page.locator("#minted h3").inner_text().rsplit("#", 1)[1])


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_2_mint_through_the_injected_wallet_shows_minted_with_the_token_id(open_page, system, chain, size):
    info, w3, contract = chain
    account = w3.eth.accounts[6 if size == "phone" else 8]
    page, shots = open_page(size, init_script=injected_wallet(info["rpc_url"], info["chain_id"], account))
    page.goto("/")
    page.click("#connect")
    page.click("#wallet-list button:has-text('Test Wallet')")
    page.wait_for_selector("#network:has-text('Local test chain')", state="attached")  # shown on desktop only
    assert page.locator("#wallet").input_value() == account  # the address field is filled from the wallet
    shots(page, "connected", full_page=False)
    job_id = quick_pinned_job(page, shots)
    page.wait_for_selector("#mint-facts:has-text('NFT goes to')")
    assert account in page.locator("#mint-facts").inner_text()
    shots(page, "ready-to-mint")
    page.click("#mint-wallet")
    token = minted_token(page)
    shots(page, "minted")

    job = httpx.get(f"{system.base_url}/v1/jobs/{job_id}").json()
    assert job["stage"] == "minted" and job["token_id"] == token
    assert contract.functions.tokenURI(token).call() == job["token_uri"]
    assert contract.functions.ownerOf(token).call() == account
    assert "eth_sendTransaction" in page.evaluate("window.__testWalletLog")
    # My mints: this wallet's jobs, newest first, this one minted.
    page.wait_for_selector(f"#mints-list a[href='/jobs/{job_id}']:has-text('Minted, token #{token}')")
    shots(page, "my-mints")
    assert axe_violations(page) == []
    assert page.errors == []


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_4_without_a_wallet_the_relayed_mint_ends_minted_to_the_given_address(open_page, system, chain, size):
    info, w3, contract = chain
    owner = Account.create().address  # an address with no wallet here at all
    page, shots = open_page(size)
    page.goto("/")
    page.click("#connect")
    page.wait_for_selector("#no-wallet:not([hidden])")
    assert page.locator("#deep-links a").count() == 3  # open the page in a wallet app's browser
    shots(page, "no-wallet", full_page=False)
    page.click("#wallet-panel-close")
    job_id = quick_pinned_job(page, shots, wallet=owner)  # submitted through the page: it keeps the claim token
    assert claim_kept(page, job_id), "the page keeps the job's claim token from its submission"
    assert page.locator("#mint-relay").is_enabled()
    assert "this service sends the mint and pays the fee" in page.locator("#mint-relay-note").inner_text()
    if size == "phone":  # open the page in a wallet app's browser
        assert page.locator("#mint-actions .deep-links a").count() == 3
    else:  # a desktop browser: add a wallet extension
        assert "add a wallet extension" in page.locator("#mint-actions").inner_text()
    shots(page, "ready-to-relay")
    assert axe_violations(page) == []
    page.click("#mint-relay")
    token = minted_token(page)
    # As after a wallet mint, the card names the collection and the network (the page reads them on its own).
    page.wait_for_selector("#minted dt:has-text('Collection')")
    minted_card = page.locator("#minted").inner_text()
    assert info["contract"].lower() in minted_card.lower() and "on Local test chain" in minted_card, minted_card
    shots(page, "minted")
    assert page.locator("#mint-error").is_hidden()
    assert contract.functions.ownerOf(token).call() == owner
    job = httpx.get(f"{system.base_url}/v1/jobs/{job_id}").json()
    assert job["stage"] == "minted" and job["token_id"] == token
    assert contract.functions.tokenURI(token).call() == job["token_uri"]
    # Sent by the launcher's minter from its relayer (anvil's dev account 2), which paid the fee.
    assert w3.eth.get_transaction(job["tx_hash"])["from"] == w3.eth.accounts[2]
    assert page.errors == []


def test_4d_a_job_opened_in_another_browser_cannot_be_relayed_and_says_why(open_page, system):
    """The claim token stays with the browser that submitted the job: the same link opened anywhere else (here a
    fresh browser context, as on another device) shows "Mint it for me" disabled with a note saying why, and
    the server refuses a relay without the token."""
    owner = Account.create().address
    page, shots = open_page("desktop")
    job_id = quick_pinned_job(page, shots, wallet=owner, seed=7_331)
    assert claim_kept(page, job_id) and page.locator("#mint-relay").is_enabled()

    elsewhere, shots = open_page("phone")  # a new context: its own, empty, localStorage
    elsewhere.goto(f"/jobs/{job_id}")
    elsewhere.wait_for_selector("#mint:not([hidden]) #mint-relay")
    relay = elsewhere.locator("#mint-relay")
    assert relay.is_disabled()
    assert not claim_kept(elsewhere, job_id)
    note = elsewhere.locator("#mint-relay-note")
    assert "only for the browser that submitted this job" in note.inner_text()
    assert relay.get_attribute("aria-describedby") == "mint-relay-note"
    assert elsewhere.locator("#mint-actions .deep-links a").count() == 3  # a wallet app is still a way to mint
    shots(elsewhere, "relay-disabled")
    assert axe_violations(elsewhere) == []
    refused = httpx.post(f"{system.base_url}/v1/jobs/{job_id}/mint", json={"relay": True}, timeout=30)
    assert refused.status_code == 403, refused.text
    assert httpx.get(f"{system.base_url}/v1/jobs/{job_id}").json()["stage"] == "pinned"  # nothing was sent
    assert elsewhere.errors == [] and page.errors == []


def test_4e_the_operators_dashboard_shows_the_minter_watching_and_sending(open_page, system):
    """After the relays above: the launcher's one minter both watches the chain and sends the relays."""
    page, shots = open_page("desktop")
    page.goto("/admin")
    page.fill("#token", ADMIN_TOKEN)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#minters li[data-replica] .r-sending", timeout=30_000)
    page.wait_for_selector("#minters li[data-replica] .r-watching", timeout=30_000)
    assert page.locator("#minters li[data-replica]").count() == 1
    card = page.inner_text("#minters")
    assert "1 sending" in card and "Relays sent from" in card and "relays off" not in card.lower(), card
    assert page.locator("#minters .problem").count() == 0, card
    assert "1 active" in page.inner_text("table.queues tr[data-stage=relay]")
    shots(page, "overview")
    assert page.errors == []


def test_4b_wrong_network_and_a_rejected_signature_each_say_what_to_do(open_page, system, chain):
    info, w3, contract = chain
    account = w3.eth.accounts[7]
    script = injected_wallet(info["rpc_url"], info["chain_id"], account, start_chain_id=1, reject_switch=1,
                             reject_send=1)
    page, shots = open_page("desktop", init_script=script)
    page.goto("/")
    page.click("#connect")
    page.click("#wallet-list button:has-text('Test Wallet')")
    page.wait_for_selector("#network:has-text('Wrong network: Ethereum')")
    job_id = quick_pinned_job(page, shots)

    page.click("#mint-wallet")  # the switch is rejected
    page.wait_for_selector("#mint-error:has-text('Your wallet is on Ethereum, and this collection lives on')")
    shots(page, "wrong-network")
    page.click("#mint-wallet")  # the switch is accepted (the chain is added first); the signature is rejected
    page.wait_for_selector("#mint-error:has-text('You declined the transaction in your wallet')")
    assert "wallet_addEthereumChain" in page.evaluate("window.__testWalletLog")
    page.wait_for_selector("#network:has-text('Local test chain')")
    assert page.locator("#mint-wallet").is_enabled()  # never a dead button
    shots(page, "rejected")
    assert httpx.get(f"{system.base_url}/v1/jobs/{job_id}").json()["stage"] == "pinned"  # nothing happened
    page.click("#mint-wallet")
    token = minted_token(page)
    assert page.locator("#mint-error").is_hidden()
    shots(page, "minted")
    assert contract.functions.ownerOf(token).call() == account
    assert page.errors == []


def test_4c_an_expired_voucher_and_an_already_minted_job_each_say_what_to_do(open_page, system, chain):
    info, w3, contract = chain
    account = w3.eth.accounts[9]
    script = injected_wallet(info["rpc_url"], info["chain_id"], account, expired_once=True)
    page, shots = open_page("phone", init_script=script)
    page.goto("/")
    page.click("#connect")
    page.click("#wallet-list button:has-text('Test Wallet')")
    quick_pinned_job(page, shots)
    page.click("#mint-wallet")  # the wallet's simulation says the voucher expired: a fresh one is read
    page.wait_for_selector("#mint-error:has-text('Your mint voucher had expired, so we fetched a fresh one')")
    assert "eth_sendTransaction" not in page.evaluate("window.__testWalletLog")  # nothing was sent
    shots(page, "expired")
    page.click("#mint-wallet")
    token = minted_token(page)
    assert contract.functions.ownerOf(token).call() == account

    # Another job, minted from elsewhere before the collector presses Mint (a wallet whose simulation is real).
    page, shots = open_page("desktop", init_script=injected_wallet(info["rpc_url"], info["chain_id"], account))
    page.goto("/")
    page.click("#connect")
    page.click("#wallet-list button:has-text('Test Wallet')")
    job_id = quick_pinned_job(page, shots, seed=4242)
    job = httpx.get(f"{system.base_url}/v1/jobs/{job_id}").json()
    tx = job["mint"]["tx"]
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": w3.eth.accounts[5], "to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16)}), 30)
    assert receipt.status == 1
    sent_before = page.evaluate("window.__testWalletLog").count("eth_sendTransaction")
    page.click("#mint-wallet")
    page.wait_for_selector("#mint-error:has-text('already been minted'), #minted:not([hidden])")
    shots(page, "already-minted")
    token = minted_token(page)  # the chain watcher records it; the page shows the token
    assert contract.functions.tokenURI(token).call() == job["token_uri"]
    assert page.evaluate("window.__testWalletLog").count("eth_sendTransaction") == sent_before
    assert page.errors == []
