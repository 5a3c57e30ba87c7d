"""The operators' dashboard in Debian's chromium, on a whole system started by the launcher (`mintpipe up`) and
pinning through the Pinata emulator, so a dead letter is a real one: the emulator answers 401 once, the pinner
parks the job in `pin.dead`, and an operator replays it from the page.

Checked as an operator would: search finds a job by wallet; the read-only token sees the dead letter but gets
no button, and its request is refused; a forged action without the CSRF token is refused; replay from the
page and the job then pins; a mint left unconfirmed is re-verified from the job's page (then the command line
says it is already minted); the chain stage's panel shows the launcher's one minter watching the chain.
Screenshots (1280x800 and 390x844) go to tests/artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import System, launched
from tests.support.chain import TestChain
from tests.support.chain_status import send_tx
from tests.support.emulator import Emulator, running_emulator

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = os.environ.get("MINTPIPE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ADMIN = "dashboard-admin-token"
READONLY = "dashboard-readonly-token"
PARKED_WALLET = "0x00000000000000000000000000000000000A11CE"
OTHER_WALLET = "0x0000000000000000000000000000000000000B0B"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"browser tests need Debian's chromium at {CHROMIUM} (bash scripts/bootstrap.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched_browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched_browser
        launched_browser.close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with running_emulator(jwt="dashboard-jwt") as running:
        yield running


@pytest.fixture(scope="module")
def system(rabbit_url: str, tmp_path_factory: pytest.TempPathFactory, emulator: Emulator,
           chain: TestChain) -> Iterator[System]:
    env = {**chain.env(confirmations=2, relay=False),
           # The watcher runs one round at start (so the overview shows it watching; replicas heartbeat every 5 s
           # whatever the poll) and then not for five minutes: a reported mint whose confirmations come later
           # stays unconfirmed, as when the watcher is down or behind, until an operator re-verifies it.
           "MINTER_CHAIN_POLL_SECONDS": "300",
           "MINTPIPE_ADMIN_TOKEN": ADMIN, "MINTPIPE_ADMIN_READONLY_TOKEN": READONLY,
           "PINNER_BACKEND": "pinata", "PINATA_JWT": emulator.jwt, "PINNER_PINATA_API_URL": emulator.url,
           "PINNER_PINATA_UPLOADS_URL": emulator.url,
           # Pinata keeps no local copy: the dashboard's GIF comes from the (emulated) Pinata gateway.
           "STATUS_IPFS_GATEWAY_URL": emulator.url}
    with launched(rabbit_url, tmp_path_factory.mktemp("dashboard"), renderers=1, pinners=1, env=env) as running:
        yield running


def submit(system: System, wallet: str, seed: int) -> str:
    reply = httpx.post(f"{system.base_url}/v1/jobs", json={"settings": {"seed": seed, "frames": 24, "size": 128},
                                                           "wallet": wallet}, timeout=30)
    assert reply.status_code == 202, reply.text
    return reply.json()["job_id"]


def wait_until(check, timeout: float = 90, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached in {timeout:.0f} s")


def job(system: System, job_id: str) -> dict:
    return httpx.get(f"{system.base_url}/v1/jobs/{job_id}", timeout=10).json()


def pin_dead_depth(system: System) -> int:
    overview = httpx.get(f"{system.base_url}/v1/admin/overview", headers={"Authorization": f"Bearer {ADMIN}"},
                         timeout=10).json()
    return next(q["depth"] for q in overview["queues"] if q["stage"] == "pin" and q["kind"] == "dead")


def sign_in(browser, system: System, token: str, viewport: dict):
    # bypass_csp: Playwright's wait_for_function evaluates its string in the page, which the dashboard's CSP
    # (script-src 'self') forbids; the app itself runs under the policy as served.
    context = browser.new_context(viewport=viewport, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{system.base_url}/admin")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")
    return context, page


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"admin-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
def parked(system: System, emulator: Emulator) -> dict[str, str]:
    """One job parked in pin.dead by the backend's 401, and one that pinned."""
    emulator.fault(status=401, count=1)
    parked_job = submit(system, PARKED_WALLET, 11)
    wait_until(lambda: pin_dead_depth(system) == 1, what="the 401 parks the job in pin.dead")
    pinned_job = submit(system, OTHER_WALLET, 12)
    wait_until(lambda: job(system, pinned_job)["stage"] == "pinned", what="the second job pins")
    return {"parked": parked_job, "pinned": pinned_job}


def test_wrong_token_is_refused_on_the_login_form(browser, system):
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{system.base_url}/admin")
    html = page.content()
    assert ADMIN not in html and READONLY not in html
    page.fill("#token", "not-the-token")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "not right" in page.inner_text("#login-error")
    shot(page, "login-wrong-desktop")
    context.close()


def test_search_finds_a_job_by_wallet(browser, system, parked):
    context, page = sign_in(browser, system, ADMIN, DESKTOP)
    page.click("nav a[data-route=jobs]")
    page.fill("input[name=q]", PARKED_WALLET.lower())
    page.click("form.search button[type=submit]")
    page.wait_for_selector("table.jobs tbody tr a")
    links = page.locator("table.jobs tbody tr a")
    assert links.count() == 1
    assert links.first.get_attribute("title") == parked["parked"]
    shot(page, "search-desktop")
    assert "Matched as wallet" in page.inner_text("#results")
    assert "parked in pin dead letters" in page.inner_text("table.jobs")
    links.first.click()
    page.wait_for_selector("#job .warnbox")
    assert "401" in page.inner_text("#job .warnbox")
    assert page.inner_text("#retry") == "Replay its dead letter"
    shot(page, "parked-job-desktop")
    context.close()


def test_the_read_only_token_sees_the_dead_letter_but_cannot_replay_it(browser, system, parked):
    context, page = sign_in(browser, system, READONLY, DESKTOP)
    page.wait_for_selector("table.queues")
    assert "read-only" in page.inner_text("#who")
    assert "dead letter(s) in pin" in page.inner_text(".warnings")
    assert page.locator("button[data-replay]").count() == 0
    shot(page, "overview-readonly-desktop")
    status = page.evaluate("""async () => {
        const s = await (await fetch('/v1/admin/session')).json();
        const r = await fetch('/v1/admin/actions/replay/pin',
                              {method: 'POST', headers: {'X-CSRF-Token': s.csrf_token || 'x'}});
        return r.status; }""")
    assert status == 403
    page.goto(f"{system.base_url}/admin#/job/{parked['parked']}")
    page.wait_for_selector("#job h1")
    assert page.locator("#retry, #cancel").count() == 0
    assert pin_dead_depth(system) == 1, "the read-only attempt changed nothing"
    context.close()


def test_a_forged_action_without_the_csrf_token_is_refused(browser, system, parked):
    context, page = sign_in(browser, system, ADMIN, DESKTOP)
    page.wait_for_selector("table.queues")
    # The browser holds an admin session; a request that carries the cookie but not the CSRF token is what a
    # forged one looks like. It must change nothing.
    status = page.evaluate("""async (id) => (await fetch('/v1/admin/actions/replay/pin', {method: 'POST'})).status""",
                           parked["parked"])
    assert status == 403
    form_post = page.evaluate("""async () => (await fetch('/v1/admin/actions/replay/pin', {method: 'POST',
        headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'x=1'})).status""")
    assert form_post == 403
    assert pin_dead_depth(system) == 1
    assert job(system, parked["parked"])["stage"] != "pinned"
    context.close()


def test_a_dead_letter_is_replayed_from_the_page_and_the_job_then_pins(browser, system, parked):
    context, page = sign_in(browser, system, ADMIN, DESKTOP)
    page.wait_for_selector("button[data-replay=pin]")
    assert "dead letter(s) in pin" in page.inner_text(".warnings")
    shot(page, "overview-dead-letter-desktop")
    page.click("button[data-replay=pin]")
    page.wait_for_selector("#confirm[open]")
    shot(page, "replay-confirm-desktop")
    page.click("#confirm-ok")
    page.wait_for_selector("#toast:not([hidden])")
    assert "1 sent back" in page.inner_text("#toast")
    wait_until(lambda: job(system, parked["parked"])["stage"] == "pinned", what="the replayed job pins")

    page.goto(f"{system.base_url}/admin#/job/{parked['parked']}")
    page.wait_for_selector("#job .media img")
    page.wait_for_function("document.querySelector('#job .media img').naturalWidth > 0")
    text = page.inner_text("#job")
    assert "pinner-0" in text and "renderer-0" in text, "each stage change names its replica"
    assert "pin" in text and "Replayed" in text
    dead_rows = page.locator("#dead-letters tbody tr")
    assert dead_rows.count() == 1 and "not yet" not in dead_rows.first.inner_text()
    shot(page, "job-desktop")
    page.click("nav a[data-route=audit]")
    page.wait_for_selector("#view table")
    audit = page.inner_text("#view table")
    assert "replay" in audit and "admin (session" in audit and "refused csrf" in audit and "refused forbidden" in audit
    shot(page, "audit-desktop")
    page.click("nav a[data-route=overview]")
    page.wait_for_selector("table.queues")
    page.wait_for_function("document.querySelector('.big') && document.querySelector('.big').textContent.length > 0")
    shot(page, "overview-desktop")
    context.close()

    phone, mobile = sign_in(browser, system, ADMIN, PHONE)
    mobile.wait_for_selector("table.queues")
    shot(mobile, "overview-phone")
    assert mobile.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways page scroll"
    mobile.goto(f"{system.base_url}/admin#/job/{parked['parked']}")
    mobile.wait_for_selector("#job .media img")
    shot(mobile, "job-phone")
    assert mobile.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.close()


def test_the_minter_panel_shows_the_replica_watching_the_chain(browser, system):
    """The launcher runs one minter: it watches the chain; relays are off here (no relayer key), which the panel
    and the queue table say instead of flagging the relay queue's missing consumer."""
    for viewport, size in ((DESKTOP, "desktop"), (PHONE, "phone")):
        context, page = sign_in(browser, system, ADMIN, viewport)
        # Its first heartbeat may come before its first round (not watching yet): the next one says it watches.
        page.wait_for_selector("#minters li[data-replica] .r-watching", timeout=30_000)
        replicas = page.locator("#minters li[data-replica]")
        assert replicas.count() == 1
        assert page.locator("#minters .r-watching").count() == 1
        card = page.inner_text("#minters")
        assert page.locator("#minters h2").text_content() == "Chain stage (minter)"
        assert replicas.first.get_attribute("data-replica") == "minter-0"
        assert "head block" in card and "heartbeat" in card and "Relays off" in card, card
        assert page.locator("#minters .problem").count() == 0, card
        assert "no minter replica is watching" not in page.inner_text(".warnings")
        assert "no consumer on relay" not in page.inner_text(".warnings"), "relays off: nothing should take them"
        assert "1 active" in page.inner_text("table.queues tr[data-stage=watch]")
        assert "relays off" in page.inner_text("table.queues tr[data-stage=relay]")
        assert "no retry tiers or dead letters" in page.inner_text("table.queues")
        shot(page, f"overview-minter-{size}")
        page.locator("#minters").screenshot(path=str(ARTIFACTS / f"admin-minter-panel-{size}.png"))
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], "no sideways page scroll"
        context.close()


def test_a_stuck_mint_is_reverified_from_the_job_page(browser, system, parked, chain):
    job_id = parked["pinned"]
    tx_hash = send_tx(chain, job(system, job_id)["mint"]["tx"], chain.collector_keys[0])
    reported = httpx.post(f"{system.base_url}/v1/jobs/{job_id}/mint", json={"tx_hash": tx_hash}, timeout=30)
    assert reported.status_code == 202 and reported.json()["state"] == "confirming", reported.text
    chain.mine(3)  # confirmed on chain; the watcher is not looking
    assert job(system, job_id)["stage"] == "pinned"

    context, page = sign_in(browser, system, READONLY, DESKTOP)
    page.goto(f"{system.base_url}/admin#/job/{job_id}")
    page.wait_for_selector("#mint")
    assert "not confirmed" in page.inner_text("#mint") and page.locator("#reverify").count() == 0
    context.close()

    context, page = sign_in(browser, system, ADMIN, DESKTOP)
    page.goto(f"{system.base_url}/admin#/job/{job_id}")
    page.wait_for_selector("#reverify")
    assert tx_hash in page.inner_text("#mint") and "not confirmed" in page.inner_text("#mint")
    shot(page, "mint-unconfirmed-desktop")
    page.click("#reverify")
    page.wait_for_selector("#confirm[open]")
    page.click("#confirm-ok")
    page.wait_for_selector("#toast:not([hidden])")
    assert "minted: token" in page.inner_text("#toast")
    minted = job(system, job_id)
    assert minted["stage"] == "minted" and minted["tx_hash"] == tx_hash
    assert chain.contract.functions.ownerOf(minted["token_id"]).call().lower() == OTHER_WALLET.lower()
    page.wait_for_selector("#mint.note")
    assert f"confirmed, token {minted['token_id']}" in page.inner_text("#mint")
    page.wait_for_selector("#job-audit tbody tr")
    assert "reverify" in page.inner_text("#job-audit")
    shot(page, "mint-reverified-desktop")
    context.close()

    again = subprocess.run([sys.executable, "-m", "launcher", "admin", "--url", system.base_url, "reverify", job_id],
                           env={**os.environ, "MINTPIPE_ADMIN_TOKEN": ADMIN}, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 1 and "already minted" in again.stderr, again.stderr
