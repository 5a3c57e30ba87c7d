"""The mint page in a real browser against the whole running system (no chain needed here): shape the settings
and see the preview follow, submit, watch the job to pinned and the GIF play; pick a job up again after a reload;
the same at desktop size, by keyboard, with axe-core finding no serious violation."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.browser.conftest import ADMIN_TOKEN, WALLET, axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
JOB_URL = re.compile(r".*/jobs/[0-9a-f]{32}$")


def wait_preview(page, action) -> bytes:
    """Runs `action`, waits for the preview it caused to be shown, and answers a screenshot of it."""
    with page.expect_response(lambda r: r.url.endswith("/v1/preview") and r.status == 200, timeout=15_000):
        action()
    page.wait_for_function("() => { const f = document.getElementById('preview-frame'); const i = "
                           "document.getElementById('preview'); return !f.classList.contains('loading') && "
                           "i.complete && i.naturalWidth > 0; }")
    return page.locator("#preview").screenshot()


def gif_frames_differ(page) -> bool:
    """Two screenshots of the GIF a moment apart differ: it plays."""
    gif = page.locator("#gif")
    first = gif.screenshot()
    page.wait_for_timeout(400)
    return gif.screenshot() != first


def make_and_mint_ready(page, shots, *, keyboard: bool = False) -> str:
    page.goto("/")
    page.wait_for_selector("#f-count")
    page.wait_for_function("() => document.getElementById('preview').src.startsWith('blob:')")
    assert page.locator("label[for=f-count]").inner_text() == "Shape count"
    assert "How many shapes" in page.locator("#f-count-help").inner_text()
    assert page.locator("#f-count").input_value() == "18"  # the schema's default
    shots(page, "form-defaults")
    first = page.locator("#preview").get_attribute("src")

    # A value the server refuses: its own words appear under the field, and the submission is not sent.
    page.fill("#f-count", "999")
    page.wait_for_selector("#f-count-error:has-text('Must be at most 64')")
    assert page.locator("#f-count").get_attribute("aria-invalid") == "true"
    shots(page, "refused-value")

    before = wait_preview(page, lambda: page.fill("#f-count", "9"))
    assert page.locator("#f-count-error").inner_text() == ""
    if keyboard:
        page.focus("#f-palette-aurora")
        after = wait_preview(page, lambda: page.keyboard.press("ArrowRight"))  # radio group: next palette
        assert page.locator("#f-palette-ember").is_checked()
    else:
        label = page.locator("label[for=f-palette-ember]")
        after = wait_preview(page, lambda: label.tap() if page.viewport_size["width"] < 500 else label.click())
    assert after != before, "the preview did not change with the palette"
    assert page.locator("#preview").get_attribute("src") != first
    surprised = wait_preview(page, lambda: page.click("#surprise"))
    assert surprised != after
    shots(page, "surprise")
    page.fill("#wallet", WALLET)
    # Keep the job quick: few frames, small.
    page.fill("#f-frames", "24")
    page.fill("#f-size", "256")
    wait_preview(page, lambda: page.fill("#f-count", "12"))
    shots(page, "filled")
    if keyboard:
        page.focus("#wallet")
        page.keyboard.press("Enter")
    else:
        page.click("#submit")
    page.wait_for_url(JOB_URL, timeout=20_000)
    job_id = page.url.rsplit("/", 1)[1]
    shots(page, "submitted")
    page.wait_for_selector("#media:not([hidden])", timeout=120_000)
    assert page.locator("#progress").get_attribute("aria-valuenow") == "100"
    assert "Ready to mint" in page.locator("#stages").inner_text()
    page.wait_for_function("() => { const g = document.getElementById('gif'); return g.complete && "
                           "g.naturalWidth === 256; }", timeout=20_000)
    assert gif_frames_differ(page), "the GIF does not play"
    page.wait_for_function("() => document.getElementById('mp4').readyState >= 1", timeout=20_000)
    shots(page, "pinned")
    return job_id


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_1_fill_preview_submit_progress_gif(open_page, system, size):
    page, shots = open_page(size)
    job_id = make_and_mint_ready(page, shots)
    job = httpx.get(f"{system.base_url}/v1/jobs/{job_id}").json()
    assert job["stage"] == "pinned" and job["wallet"] == WALLET
    assert job["settings"]["palette"] != "" and job["settings"]["count"] == 12 and job["settings"]["frames"] == 24
    assert page.locator("#job-link").get_attribute("href") == f"/jobs/{job_id}"
    # Nothing on the page came from another machine.
    assert page.evaluate("() => performance.getEntriesByType('resource').every(e => "
                         "new URL(e.name).origin === location.origin || e.name.startsWith('blob:'))")
    assert page.errors == []


def test_3_reload_mid_job_picks_it_up_from_its_link(open_page, system):
    page, shots = open_page("phone")
    page.goto("/")
    page.wait_for_selector("#f-count")
    page.fill("#wallet", WALLET)
    page.fill("#f-frames", "200")  # long enough to reload while it renders
    page.fill("#f-size", "768")
    page.click("#submit")
    page.wait_for_url(JOB_URL, timeout=20_000)
    link = page.url
    job_id = link.rsplit("/", 1)[1]
    page.wait_for_selector("#stages li[aria-current=step]")
    shots(page, "before-reload")
    assert httpx.get(f"{system.base_url}/v1/jobs/{job_id}").json()["stage"] not in ("pinned", "failed")
    page.reload()
    page.wait_for_selector("#job:not([hidden])")
    shots(page, "after-reload")
    assert page.locator("#f-frames").input_value() == "200"  # the job's settings are back in the form
    page.wait_for_selector("#media:not([hidden])", timeout=180_000)
    assert "Ready to mint" in page.locator("#job-status").inner_text()
    shots(page, "ended-pinned")

    # The same link on another device, where the event stream cannot be used: the poll gets there too.
    other, other_shots = open_page("desktop", init_script="window.__mintpipeForcePolling = true")
    other.goto(link)
    other.wait_for_selector("#media:not([hidden])", timeout=30_000)
    assert other.locator("#progress").get_attribute("aria-valuenow") == "100"
    other_shots(other, "polling-pinned")
    assert page.errors == [] and other.errors == []


def test_3b_an_unknown_job_link_says_so(open_page):
    page, shots = open_page("phone")
    page.goto("/jobs/" + "0" * 32)
    page.wait_for_selector("#job-error:has-text('We could not find this job')")
    shots(page, "unknown-job")


def test_5_desktop_by_keyboard_with_visible_focus_and_no_serious_axe_violation(open_page, system):
    page, shots = open_page("desktop")
    page.goto("/")
    page.wait_for_selector("#f-count")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent")
    assert "Skip to the form" in focused
    # Every control reached by Tab shows where the focus is.
    for _ in range(6):
        page.keyboard.press("Tab")
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle + ' ' + "
                                "getComputedStyle(document.activeElement).outlineWidth")
        assert not outline.startswith("none"), (page.evaluate("() => document.activeElement.outerHTML"), outline)
    shots(page, "keyboard-focus", full_page=False)
    assert axe_violations(page) == []
    job_id = make_and_mint_ready(page, shots, keyboard=True)
    assert axe_violations(page) == []
    assert httpx.get(f"{system.base_url}/v1/jobs/{job_id}").json()["stage"] == "pinned"
    assert page.errors == []


def test_a_failed_job_says_why_in_words_and_submitting_again_makes_a_new_job(open_page, system):
    page, shots = open_page("phone")
    page.goto("/")
    page.wait_for_selector("#f-count")
    page.fill("#wallet", WALLET)
    page.fill("#f-frames", "240")
    page.fill("#f-size", "1024")
    page.click("#submit")
    page.wait_for_url(JOB_URL, timeout=20_000)
    job_id = page.url.rsplit("/", 1)[1]
    cancelled = httpx.post(f"{system.base_url}/v1/admin/jobs/{job_id}/cancel",
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert cancelled.status_code == 200, cancelled.text
    page.wait_for_selector("#job-error:has-text('cancelled by an operator')", timeout=30_000)
    assert "submit again to retry" in page.locator("#job-error").inner_text()
    assert page.locator("#stages li.failed").count() == 1
    shots(page, "failed")
    page.click("#submit")  # the same settings again: a new job, not the failed one found by the old key
    page.wait_for_url(lambda url: JOB_URL.match(url) is not None and not url.endswith(job_id), timeout=20_000)
    assert page.url.rsplit("/", 1)[1] != job_id
    page.wait_for_selector("#job-error", state="hidden")
    shots(page, "submitted-again")
    httpx.post(f"{system.base_url}{page.url.split(system.base_url)[1].replace('/jobs/', '/v1/admin/jobs/')}/cancel",
               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # it need not run to the end
    assert page.errors == []


def test_the_page_is_served_with_cache_headers_and_versioned_assets(system):
    page = httpx.get(f"{system.base_url}/", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    assert page.headers["content-encoding"] == "gzip"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = re.search(r'src="(/page/main\.js\?v=[0-9a-f]{8})"', page.text).group(1)
    asset = httpx.get(f"{system.base_url}{script}")
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    again = httpx.get(f"{system.base_url}/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    assert httpx.get(f"{system.base_url}/jobs/{'a' * 32}").text == httpx.get(f"{system.base_url}/").text
