"""Fault tests (issue 5): the promises of SPEC.md "What users can count on", each under the fault it is about.

One system (3 renderers, 2 pinners, a RabbitMQ node of our own, the Pinata emulator) goes through the
scenarios in order; the last test checks what must hold over the whole run and prints the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aio_pika
import httpx
import pytest

from tests.chaos.conftest import ADMIN_TOKEN, PINNERS, RENDERERS, ChaosRun
from tests.chaos.faults import POISON, Duplicator, dead_letters, publish_poison
from tests.chaos.harness import WALLET, fetch_jobs
from tests.chaos.ledger import render_ledger

pytestmark = [pytest.mark.chaos]

MIN_KILLS = 5
SAME_REPLICA_GAP = 15.0  # the supervisor gives up on a child that dies more than 5 times a minute


async def queue_depth(url: str, queue: str) -> int:
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def wait_accepted(chaos: ChaosRun, keys: list[str], count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum(k in chaos.clients.accepted for k in keys) < count:
        assert time.monotonic() < deadline, f"fewer than {count} submissions accepted in {timeout}s"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(240)
async def test_replicas_sigkilled_at_random_points(chaos: ChaosRun) -> None:
    """100 jobs while renderer and pinner replicas are SIGKILLed (and restarted by the supervisor) at random
    moments: every acknowledged job is pinned."""
    scenario, began = "replica kills", time.monotonic()
    jobs = chaos.new_jobs(scenario, 100)
    submitting = asyncio.create_task(chaos.clients.submit_many(jobs, per_second=5))
    replicas = [f"renderer-{i}" for i in range(RENDERERS)] + [f"pinner-{i}" for i in range(PINNERS)]
    last_kill: dict[str, float] = {}
    kills: list[tuple[str, int]] = []
    while len(kills) < MIN_KILLS or not submitting.done():
        await asyncio.sleep(chaos.rng.uniform(0.8, 2.5))
        eligible = [r for r in replicas if time.monotonic() - last_kill.get(r, -1e9) > SAME_REPLICA_GAP]
        if not eligible:
            continue
        victim = chaos.rng.choice(eligible)
        in_flight = chaos.watcher.busy()
        pid = chaos.system.kill(victim)
        if pid is None:  # between a death and its restart
            continue
        last_kill[victim] = time.monotonic()
        kills.append((victim, pid))
        chaos.note(scenario, f"SIGKILL {victim:<10} pid {pid:<7} ({in_flight} jobs not yet pinned)")
    ids = await submitting
    chaos.jobs[scenario] = ids
    await chaos.watcher.wait_pinned(ids, timeout=150)
    chaos.durations[scenario] = time.monotonic() - began
    chaos.counts["replica kills"] = len(kills)

    # Every killed replica was restarted by the supervisor and runs again.
    for victim, pid in kills:
        await chaos.system.wait_running(victim, other_than=pid)
    assert chaos.system.log_lines('"service exited; restarting"') >= len(kills)
    assert len(kills) >= MIN_KILLS


@pytest.mark.timeout(240)
async def test_broker_killed_during_submission_and_processing(chaos: ChaosRun) -> None:
    """RabbitMQ is SIGKILLed and restarted while jobs are being submitted and processed: the bridge answers
    503 (gateway UNAVAILABLE) meanwhile, clients retry with their keys, and every acknowledged job is pinned."""
    scenario, began = "broker restart", time.monotonic()
    jobs = chaos.new_jobs(scenario, 30)
    (probe_key, probe_settings), = chaos.new_jobs(scenario, 1)
    before = Counter(chaos.clients.outcomes)
    submitting = asyncio.create_task(chaos.clients.submit_many(jobs, per_second=4))
    await wait_accepted(chaos, [k for k, _ in jobs], 8)
    await asyncio.to_thread(chaos.node.kill)
    chaos.note(scenario, f"SIGKILL rabbitmq node ({chaos.watcher.busy()} jobs not yet pinned)")
    async with httpx.AsyncClient() as http:
        # While the broker is down a submission is refused with 503, never acknowledged.
        await asyncio.sleep(1.0)
        refused = await http.post(f"{chaos.system.base_url}/v1/jobs", headers={"Idempotency-Key": probe_key},
                                  json={"settings": probe_settings, "wallet": WALLET}, timeout=20)
        chaos.note(scenario, f"a submission while it is down: HTTP {refused.status_code} {refused.json()}")
        assert refused.status_code == 503, refused.text
        await asyncio.sleep(chaos.rng.uniform(1.0, 3.0))
        boot = await asyncio.to_thread(chaos.node.start)
        chaos.note(scenario, f"rabbitmq node up again after a {boot:.1f}s boot")
        # The same client retries with its key, and this time it is acknowledged.
        ids = [*await submitting, await chaos.clients.submit(http, probe_key, probe_settings)]
    chaos.jobs[scenario] = ids
    await chaos.watcher.wait_pinned(ids, timeout=180)
    chaos.durations[scenario] = time.monotonic() - began
    during = Counter(chaos.clients.outcomes) - before
    chaos.counts["client answers while the broker was down"] = sum(v for k, v in during.items() if k != "202")
    chaos.note(scenario, "client attempts: " + ", ".join(f"{k}×{v}" for k, v in sorted(during.items())))
    assert len(set(ids)) == len(ids) == len(jobs) + 1


@pytest.mark.timeout(180)
async def test_status_service_killed_mid_run(chaos: ChaosRun) -> None:
    """The status service (job store, bridge) is SIGKILLed mid-run; events wait in their durable queue and
    none is lost: every job ends pinned with its token URI and all four content ids."""
    scenario, began = "status restart", time.monotonic()
    jobs = chaos.new_jobs(scenario, 30)
    submitting = asyncio.create_task(chaos.clients.submit_many(jobs, per_second=6))
    await wait_accepted(chaos, [k for k, _ in jobs], 10)
    pid = chaos.system.kill("status")
    assert pid is not None
    chaos.note(scenario, f"SIGKILL status pid {pid} ({chaos.watcher.busy()} jobs not yet pinned)")
    await asyncio.sleep(0.8)
    waiting = await queue_depth(chaos.node.url, chaos.topology.status_queue)
    restarted = await chaos.system.wait_running("status", other_than=pid)
    chaos.note(scenario, f"status restarted as pid {restarted}; {waiting} events were waiting in its queue")
    ids = await submitting
    chaos.jobs[scenario] = ids
    await chaos.watcher.wait_pinned(ids, timeout=150)
    chaos.durations[scenario] = time.monotonic() - began
    chaos.counts["status kills"] = 1
    for job in (await fetch_jobs(chaos.system.base_url, ids)).values():
        assert job["progress"] == 100 and job["token_uri"], job
        assert all(job["assets"].values()), job


@pytest.mark.timeout(180)
async def test_duplicates_poison_and_backend_bursts(chaos: ChaosRun) -> None:
    """Every render job, pin job and event is published twice; a poison message sits on the render queue;
    the Pinata emulator answers 429 and 503 in bursts. Every job is pinned and the poison is dead-lettered."""
    scenario, began = "duplicates+poison+429/503", time.monotonic()
    duplicator = Duplicator(chaos.node.url, chaos.topology)
    await duplicator.start()
    try:
        await publish_poison(chaos.node.url, chaos.topology.render_queue)
        chaos.note(scenario, f"poison ({len(POISON)} bytes of garbage) published onto {chaos.topology.render_queue}")
        jobs = chaos.new_jobs(scenario, 30)
        submitting = asyncio.create_task(chaos.clients.submit_many(jobs, per_second=6))
        for burst in ({"status": 429, "count": 6, "retry_after": 1}, {"status": 503, "count": 6},
                      {"status": 429, "count": 4, "retry_after": 2}, {"status": 503, "count": 4}):
            await asyncio.sleep(chaos.rng.uniform(0.8, 1.6))
            await asyncio.to_thread(chaos.emulator.fault, **burst)
            chaos.note(scenario, f"emulator burst: next {burst['count']} API requests answer {burst['status']}")
        ids = await submitting
        chaos.jobs[scenario] = ids
        await chaos.watcher.wait_pinned(ids, timeout=150)
        chaos.durations[scenario] = time.monotonic() - began
        # Let the late copies (duplicates of the last events and pin jobs) be consumed before we look.
        await asyncio.sleep(3)
    finally:
        await duplicator.stop()
    chaos.counts.update({f"duplicates injected ({kind})": n for kind, n in sorted(duplicator.copies.items())})
    assert duplicator.copies["render"] >= len(ids) and duplicator.copies["pin"] >= len(ids)


@pytest.mark.timeout(120)
async def test_nothing_lost_nothing_twice_nothing_backwards(chaos: ChaosRun) -> None:
    """Over the whole run: every acknowledged job pinned, 0 lost, each content id uploaded exactly once, no
    stage or progress ever went backwards, and the dead-letter queues hold the poison and nothing else."""
    all_ids = chaos.all_jobs()
    assert all_ids, "the scenarios above did not run"
    jobs = await fetch_jobs(chaos.system.base_url, all_ids)
    pinned = [j for j in jobs.values() if j["stage"] == "pinned"]
    uploads = chaos.emulator.stats()
    per_cid: dict[str, int] = uploads["uploads_per_cid"]
    job_cids = [cid.removeprefix("ipfs://") for j in pinned for cid in j["assets"].values() if cid]
    dead = await dead_letters(chaos.node.url, chaos.topology)
    broker = await asyncio.to_thread(chaos.node.totals)
    async with httpx.AsyncClient() as http:
        admin = (await http.get(f"{chaos.system.base_url}/v1/admin/dead-letters/render",
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)).json()
    measured = {
        "jobs acknowledged (202)": len(all_ids),
        "jobs pinned": len(pinned),
        "lost": len(all_ids) - len(pinned),
        "replica kills (SIGKILL)": chaos.counts.get("replica kills", 0),
        "status service kills (SIGKILL)": chaos.counts.get("status kills", 0),
        "broker kills (SIGKILL) / starts": f"{chaos.node.kills} / {chaos.node.starts}",
        "redeliveries (broker counter)": broker["redelivered"],
        "retries (services' logs)": chaos.system.log_lines('"transient failure; retrying later"'),
        "retry-tier expiries (broker)": broker["retry_tier_expired"],
        "delivery-limit dead letters (broker)": broker["delivery_limit_dead_lettered"],
        **{k: v for k, v in chaos.counts.items() if k.startswith("duplicates injected")},
        "client attempts": ", ".join(f"{k}×{v}" for k, v in sorted(chaos.clients.outcomes.items())),
        "emulator faults served (429/503)": uploads["faults_served"],
        "uploads (emulator)": sum(per_cid.values()),
        "distinct CIDs uploaded": len(per_cid),
        "duplicate uploads": sum(n - 1 for n in per_cid.values()),
        "stage transitions observed": chaos.watcher.transitions,
        "stage/progress regressions": len(chaos.watcher.regressions),
        "dead letters": ", ".join(f"{q.rsplit('.', 1)[-1] if q.endswith('events') else q.split('.')[-1]}="
                                  f"{len(m)}" for q, m in dead.items()),
        "poison's reason": next(iter(dead[chaos.topology.render_queue]), (b"", "-"))[1][:70],
    }
    ledger = render_ledger(chaos, measured)
    print("\n" + ledger)
    (chaos.chaos_dir / "ledger.txt").write_text(ledger + "\n")
    print(f"ledger written to {chaos.chaos_dir / 'ledger.txt'}")

    assert measured["lost"] == 0, [j["job_id"] for j in jobs.values() if j["stage"] != "pinned"]
    assert not chaos.watcher.regressions, chaos.watcher.regressions[:10]
    assert len(job_cids) == 4 * len(pinned)
    assert {cid: per_cid.get(cid, 0) for cid in job_cids if per_cid.get(cid, 0) != 1} == {}
    assert measured["duplicate uploads"] == 0
    assert [body for body, _ in dead[chaos.topology.render_queue]] == [POISON]
    assert "RenderJob" in dead[chaos.topology.render_queue][0][1]
    assert dead[chaos.topology.pin_queue] == [] and dead[chaos.topology.status_queue] == []
    assert admin["count"] == 1 and admin["messages"][0]["reason"], admin
