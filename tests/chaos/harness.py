"""What the chaos tests drive and watch: the launched system (and its child processes), clients that submit
with an Idempotency-Key and retry like a browser would, and a watcher that follows every job's stage."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

WALLET = "0x000000000000000000000000000000000000dEaD"
STAGE_RANK = {"queued": 1, "rendering": 2, "rendered": 3, "pinning": 4, "pinned": 5, "minted": 6}


# --- the launched system -------------------------------------------------------------------------------
def _ppid(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state, past "(comm)"


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@dataclass
class System:
    process: subprocess.Popen
    base_url: str
    port_base: int
    data_dir: Path
    log_path: Path
    prefix: str
    seen_pids: set[int] = field(default_factory=set)

    def children(self) -> dict[str, int]:
        """The launcher's live children by service name (renderer-0, pinner-1, status, gateway)."""
        found: dict[str, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or _ppid(entry) != self.process.pid:
                continue
            pid = int(entry)
            env = _environ(pid)
            if "RENDERER_HEALTH_PORT" in env:
                found[f"renderer-{int(env['RENDERER_HEALTH_PORT']) - self.port_base - 100}"] = pid
            elif "PINNER_HEALTH_PORT" in env:
                found[f"pinner-{int(env['PINNER_HEALTH_PORT']) - self.port_base - 200}"] = pid
            elif "STATUS_HTTP_PORT" in env:
                found["status"] = pid
            elif "GATEWAY_GRPC_PORT" in env:
                found["gateway"] = pid
        self.seen_pids.update(found.values())
        return found

    def kill(self, name: str) -> int | None:
        """SIGKILL one service (the supervisor restarts it); its pid, or None if it was not running."""
        pid = self.children().get(name)
        if pid is None:
            return None
        os.kill(pid, signal.SIGKILL)
        return pid

    async def wait_running(self, name: str, other_than: int | None, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.children().get(name)
            if pid is not None and pid != other_than:
                return pid
            await asyncio.sleep(0.2)
        raise AssertionError(f"{name} was not restarted within {timeout}s")

    def log_lines(self, needle: str) -> int:
        with open(self.log_path, "rb") as fh:
            return sum(1 for line in fh if needle.encode() in line)

    def stop(self) -> None:
        """SIGTERM the launcher (it drains its children); SIGKILL anything of ours still alive after."""
        self.children()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.seen_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- clients -------------------------------------------------------------------------------------------
@dataclass
class Clients:
    """Submits like a well-behaved front end: one Idempotency-Key per job, retried until it is accepted."""

    base_url: str
    outcomes: Counter[str] = field(default_factory=Counter)
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> job id

    async def submit(self, http: httpx.AsyncClient, key: str, settings: dict, timeout: float = 150) -> str:
        body = {"settings": settings, "wallet": WALLET}
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            try:
                reply = await http.post(f"{self.base_url}/v1/jobs", json=body, headers={"Idempotency-Key": key},
                                        timeout=20)
                outcome = str(reply.status_code)
            except httpx.TransportError as exc:
                reply, outcome = None, type(exc).__name__
            self.outcomes[outcome] += 1
            if reply is not None and reply.status_code == 202:
                job_id = reply.json()["job_id"]
                previous = self.accepted.setdefault(key, job_id)
                assert previous == job_id, f"key {key} named {previous}, now {job_id}"
                return job_id
            # 503 (broker or job store down), 429, or no answer at all (the bridge restarting): retry, same key.
            assert reply is None or reply.status_code in (429, 503, 504), f"{key}: {outcome} {reply.text[:300]}"
            assert time.monotonic() < deadline, f"{key} not accepted in {timeout}s (last: {outcome})"
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    async def submit_many(self, keys_settings: list[tuple[str, dict]], per_second: float,
                          concurrency: int = 8) -> list[str]:
        """Submit at a steady pace (so faults land while work is in flight); the job ids in order."""
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient() as http:
            async def one(i: int, key: str, settings: dict) -> str:
                await asyncio.sleep(i / per_second)
                async with gate:
                    return await self.submit(http, key, settings)

            return list(await asyncio.gather(*(one(i, k, s) for i, (k, s) in enumerate(keys_settings))))


# --- the watcher ---------------------------------------------------------------------------------------
@dataclass
class StageWatcher:
    """Follows every job's (stage, progress) through GET /v1/jobs pages, as a front end would, and records
    any step backwards. Polls fail while the status service is down; those polls are just skipped."""

    base_url: str
    interval: float = 0.5
    latest: dict[str, tuple[str, int]] = field(default_factory=dict)
    regressions: list[str] = field(default_factory=list)
    transitions: int = 0
    polls: int = 0
    failed_polls: int = 0

    def observe(self, job: dict) -> None:
        job_id, stage, progress = job["job_id"], job["stage"], job["progress"]
        before = self.latest.get(job_id)
        if before == (stage, progress):
            return
        if before is not None:
            old_stage, old_progress = before
            if stage == "failed" or STAGE_RANK[stage] < STAGE_RANK.get(old_stage, 0) or progress < old_progress:
                self.regressions.append(f"{job_id}: {old_stage}/{old_progress} -> {stage}/{progress}")
        self.latest[job_id] = (stage, progress)
        self.transitions += 1

    async def poll_once(self, http: httpx.AsyncClient) -> None:
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = (await http.get(f"{self.base_url}/v1/jobs", params=params, timeout=10)).raise_for_status().json()
            for job in page["jobs"]:
                self.observe(job)
            cursor = page["next_cursor"]
            if not cursor:
                return

    async def run(self) -> None:
        async with httpx.AsyncClient() as http:
            while True:
                self.polls += 1
                try:
                    await self.poll_once(http)
                except (httpx.HTTPError, ValueError):
                    self.failed_polls += 1
                await asyncio.sleep(self.interval)

    def stage(self, job_id: str) -> str | None:
        seen = self.latest.get(job_id)
        return seen[0] if seen else None

    def busy(self) -> int:
        return sum(1 for stage, _ in self.latest.values() if stage in ("queued", "rendering", "rendered", "pinning"))

    async def wait_pinned(self, job_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            stages = Counter(self.stage(j) for j in job_ids)
            assert stages["failed"] == 0, f"failed jobs: {[j for j in job_ids if self.stage(j) == 'failed']}"
            if stages["pinned"] == len(job_ids):
                return
            assert time.monotonic() < deadline, f"not all pinned after {timeout}s: {dict(stages)}"
            await asyncio.sleep(0.5)


async def fetch_jobs(base_url: str, job_ids: list[str]) -> dict[str, dict]:
    async with httpx.AsyncClient() as http:
        out = {}
        for job_id in job_ids:
            reply = await http.get(f"{base_url}/v1/jobs/{job_id}", timeout=10)
            assert reply.status_code == 200, f"{job_id}: {reply.status_code} {reply.text[:200]}"
            out[job_id] = reply.json()
        return out


def settings_for(seed: int) -> dict:
    # Small clips keep 100+ jobs fast on two cores; every job has its own seed, so its own content ids.
    return {"seed": seed, "frames": 10, "size": 128}
