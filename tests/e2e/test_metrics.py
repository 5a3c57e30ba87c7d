"""Every service's /metrics after real jobs, checked against what happened: one job pinned (its assets' bytes as
served back from /ipfs), one submission refused, the stage durations of that one job, the queues empty with
one consumer each, draw and encode seconds per encoder (the MP4's equal to its ffmpeg's CPU), the overview's
rates for that one job, and an SSE client counted while its stream is open. The ports are the ones `mintpipe up`
prints."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mintpipe.messaging.broker import RETRY_TIERS
from tests.e2e.conftest import System, launched

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
WALLET = "0x000000000000000000000000000000000000dEaD"
ADMIN = "metrics-admin-token"


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(url, timeout=10).text
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples, name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items())]
    assert found, f"{name}{labels} not exported"
    return sum(found)


def prefix_of(samples) -> str:
    """The system's queue prefix, from the name of its render queue as exported."""
    queue = next(lab["queue"] for n, lab, _ in samples if n == "mintpipe_queue_depth" and lab.get("kind") == "work"
                 and lab.get("stage") == "render")
    return queue.removesuffix(".render")


def job_created(job: dict) -> float:
    return datetime.fromisoformat(job["created_at"].replace("Z", "+00:00")).timestamp()


def printed_metrics(system: System) -> dict[str, str]:
    line = next(li for li in system.log_path.read_text().splitlines() if li.startswith("metrics: "))
    return dict(re.findall(r"([\w-]+) (http://\S+?/metrics)", line))


@pytest.fixture(scope="module")
def system(rabbit_url, tmp_path_factory):
    with launched(rabbit_url, tmp_path_factory.mktemp("metrics"), renderers=1, pinners=1,
                  env={"MINTPIPE_ADMIN_TOKEN": ADMIN}) as running:
        yield running


def test_every_service_counts_what_happened_to_a_job(system: System):
    urls = printed_metrics(system)
    assert set(urls) == {"status", "gateway", "renderer-0", "pinner-0", "minter-0"}
    minter = httpx.get(urls["minter-0"], timeout=10).text  # the chain stage's own: its roles and the head
    assert 'mintpipe_minter_active{role="watcher"}' in minter and "mintpipe_chain_head_block" in minter
    refused = httpx.post(f"{system.base_url}/v1/jobs", json={"settings": {"frames": 5}, "wallet": WALLET}, timeout=30)
    assert refused.status_code == 400
    reply = httpx.post(f"{system.base_url}/v1/jobs", json={"settings": {"seed": 5, "frames": 20, "size": 128},
                                                           "wallet": WALLET}, timeout=30)
    assert reply.status_code == 202
    job_id = reply.json()["job_id"]

    # An SSE client held open while the job runs is counted on the bridge.
    opened = threading.Event()

    def follow() -> None:
        with httpx.stream("GET", f"{system.base_url}/v1/jobs/{job_id}/events", timeout=60) as stream:
            for line in stream.iter_lines():
                opened.set()
                if '"stage": "pinned"' in line or '"stage":"pinned"' in line:
                    return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert opened.wait(20)
    assert value(scrape(urls["status"]), "mintpipe_sse_clients") == 1
    reader.join(90)
    deadline = time.monotonic() + 60
    while (job := httpx.get(f"{system.base_url}/v1/jobs/{job_id}").json())["stage"] != "pinned":
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    time.sleep(0.5)  # the last acks are counted just after the events that announced them

    gateway = scrape(urls["gateway"])
    assert value(gateway, "mintpipe_jobs_submitted_total", outcome="accepted") == 1
    assert value(gateway, "mintpipe_jobs_submitted_total", outcome="invalid_argument") == 1

    renderer = scrape(urls["renderer-0"])
    assert value(renderer, "mintpipe_messages_total", queue="render", outcome="acked") == 1
    assert value(renderer, "mintpipe_render_seconds_count") == 1
    assert value(renderer, "mintpipe_render_cpu_seconds_total", part="replica") > 0
    # One job drawn and encoded once by each encoder. Each part is within the render's wall time (the GIF's
    # two threads at most double it), and the MP4 encoder's seconds are its ffmpeg's CPU, part of the replica's
    # children's CPU.
    wall = value(renderer, "mintpipe_render_seconds_sum")
    assert value(renderer, "mintpipe_render_draw_seconds_count") == 1
    assert 0 < value(renderer, "mintpipe_render_draw_seconds_sum") < wall
    for encoder, most in (("gif", 2 * wall), ("mp4", wall), ("png", wall)):
        assert value(renderer, "mintpipe_encode_seconds_count", encoder=encoder) == 1, encoder
        assert 0 < value(renderer, "mintpipe_encode_seconds_sum", encoder=encoder) < most, encoder
    # (os.times counts children in 10 ms ticks, and also counts imageio-ffmpeg's one-off probe of its binary.)
    assert value(renderer, "mintpipe_encode_seconds_sum", encoder="mp4") <= value(
        renderer, "mintpipe_render_cpu_seconds_total", part="ffmpeg") + 0.011
    for kind, cid_key in (("image", "image"), ("animation", "animation"), ("preview", "preview")):
        served = httpx.get(f"{system.base_url}/ipfs/{job['assets'][cid_key].removeprefix('ipfs://')}").content
        assert value(renderer, "mintpipe_asset_bytes_total", kind=kind) == len(served)

    pinner = scrape(urls["pinner-0"])
    assert value(pinner, "mintpipe_messages_total", queue="pin", outcome="acked") == 1
    assert value(pinner, "mintpipe_pin_uploads_total", backend="local") == 4  # GIF, MP4, PNG, metadata
    assert value(pinner, "mintpipe_pin_rate_limited_total") == 0
    assert value(pinner, "mintpipe_pinner_pin_budget_left") == -1

    status = scrape(urls["status"])
    for span in ("queued_to_rendering", "render", "pin", "queued_to_pinned"):
        assert value(status, "mintpipe_stage_seconds_count", span=span) == 1, span
    took = value(status, "mintpipe_stage_seconds_sum", span="queued_to_pinned")
    assert 0 < took < 60
    assert value(status, "mintpipe_jobs_finished_total", outcome="pinned") == 1
    for stage in ("rendering", "rendered", "pinning", "pinned"):
        assert value(status, "mintpipe_status_events_applied_total", stage=stage) >= 1
    assert value(status, "mintpipe_status_events_applied_total", stage="pinned") == 1
    assert value(status, "mintpipe_messages_total", queue="events", outcome="acked") >= 4
    assert value(status, "mintpipe_sse_clients") == 0
    for stage in ("render", "pin", "events"):
        assert value(status, "mintpipe_queue_depth", stage=stage, kind="work") == 0
        assert value(status, "mintpipe_queue_consumers", stage=stage, kind="work") == 1
        assert value(status, "mintpipe_queue_depth", stage=stage, kind="dead") == 0
    assert value(status, "mintpipe_pins_this_month") == 4
    for tier in RETRY_TIERS:
        assert value(status, "mintpipe_queue_depth", stage="render", kind="retry",
                     queue=f"{prefix_of(status)}.render.retry.{tier}s") == 0

    # The dashboard's overview, within the minute: one job in and out of render and pin, nothing through a retry
    # tier or into dead letters.
    overview = httpx.get(f"{system.base_url}/v1/admin/overview", headers={"Authorization": f"Bearer {ADMIN}"},
                         timeout=10).json()
    assert time.time() - job_created(job) < 55, "the job must be within the overview's one-minute window"
    rows = {(q["stage"], q["kind"], q["tier_seconds"]): q for q in overview["queues"]}
    for stage in ("render", "pin"):
        assert (rows[(stage, "work", None)]["rate_in"], rows[(stage, "work", None)]["rate_out"]) == (
            pytest.approx(1 / 60), pytest.approx(1 / 60)), stage
        assert rows[(stage, "dead", None)]["rate_in"] == 0 and rows[(stage, "dead", None)]["rate_out"] == 0
        for tier in RETRY_TIERS:
            assert rows[(stage, "retry", tier)]["rate_in"] == 0 and rows[(stage, "retry", tier)]["depth"] == 0
    assert overview["jobs"]["last_hour"]["pinned"] == 1


def test_the_grafana_dashboard_uses_only_metrics_the_services_export(system: System):
    import json
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/mintpipe.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"mintpipe_\w+", target["expr"])}
    exported: set[str] = set()
    for url in printed_metrics(system).values():
        for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
            exported.add(family.name)
            exported.update(s.name for s in family.samples)
            if family.type == "counter":
                exported.add(family.name + "_total")
            if family.type == "histogram":
                exported.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    assert used and used <= exported, sorted(used - exported)
