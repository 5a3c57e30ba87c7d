"""The real page in Debian's chromium, driven by Playwright, against the whole system started by the launcher
(`mintpipe up`: bridge, gateway, renderers, pinner, status on the real RabbitMQ). Screenshots of every step go to
tests/artifacts/ (not committed) for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import System, launched

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
WALLET = "0x000000000000000000000000000000000000dEaD"
ADMIN_TOKEN = "browser-tests-admin-token"


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Not for the session: sync Playwright keeps its event loop running while it is
    open, and the async tests that run after the browser tests could not start theirs."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap.sh (it installs Debian's chromium)")
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/bootstrap.sh (npm packages)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def system(rabbit_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with launched(rabbit_url, tmp_path_factory.mktemp("browser-system"), renderers=2,
                  env={"MINTPIPE_ADMIN_TOKEN": ADMIN_TOKEN}) as running:
        yield running


class Shots:
    """Numbered screenshots of one test at one size: tests/artifacts/<test>-<size>-NN-<step>.png."""

    def __init__(self, name: str, size: str) -> None:
        self.prefix = f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}-{size}"
        self.count = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob(f"{self.prefix}-*.png"):
            old.unlink()

    def __call__(self, page, step: str, full_page: bool = True) -> Path:
        """Saves the screenshot, after checking nothing sticks out sideways (a phone would scroll sideways)."""
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{step}: the page is {overflow} px wider than the window"
        self.count += 1
        path = ARTIFACTS / f"{self.prefix}-{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def open_page(browser, system, request):
    """open_page(size) -> (page, shots): a fresh browser context at that viewport, touch on the phone size."""
    contexts = []

    def make(size: str, *, init_script: str | None = None):
        context = browser.new_context(viewport=SIZES[size], has_touch=size == "phone", is_mobile=size == "phone",
                                      device_scale_factor=1, base_url=system.base_url, bypass_csp=True)
        if init_script:
            context.add_init_script(init_script)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors  # type: ignore[attr-defined]
        return page, Shots(request.node.originalname, size)

    yield make
    for context in contexts:
        context.close()


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result if v["impact"] in ("serious", "critical")]


def injected_wallet(rpc_url: str, chain_id: int, account: str, *, start_chain_id: int | None = None,
                    reject_switch: int = 0, reject_send: int = 0, expired_once: bool = False) -> str:
    """An init script injecting tests/browser/injected_wallet.js, configured."""
    import json

    config = {"rpcUrl": rpc_url, "anvilChainId": chain_id, "account": account, "startChainId": start_chain_id,
              "rejectSwitch": reject_switch, "rejectSend": reject_send, "expiredOnce": expired_once}
    source = (Path(__file__).parent / "injected_wallet.js").read_text()
    return f"window.__testWalletConfig = {json.dumps(config)};\n{source}"


def quick_pinned_job(page, shots, wallet: str | None = None, seed: int | None = None) -> str:
    """From `/`: a small job (24 frames of 256 px) to `wallet` (or the connected one), followed to pinned. The
    same settings to the same wallet find the same job again (the page keeps its Idempotency-Key): give
    another `seed` for another job."""
    page.goto("/")
    page.wait_for_selector("#f-count")
    if wallet is not None:
        page.fill("#wallet", wallet)
    else:  # the wallet connected before the page was (re)loaded is restored without a prompt and fills it
        page.wait_for_function("() => document.getElementById('wallet').value.length === 42")
    page.fill("#f-frames", "24")
    page.fill("#f-size", "256")
    if seed is not None:
        page.fill("#f-seed", str(seed))
    page.click("#submit")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f]{32}$"), timeout=20_000)
    page.wait_for_selector("#media:not([hidden])", timeout=120_000)
    shots(page, "pinned")
    return page.url.rsplit("/", 1)[1]
