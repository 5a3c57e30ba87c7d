"""`mintpipe submit|status|watch|jobs`: the public HTTP API from a terminal.

  mintpipe submit SETTINGS.json [--wallet 0x…] [--key K] [--wait]   submit; with --wait, a progress bar until done
  mintpipe status JOB_ID [--wait-minted]                          the job as JSON (with its mint once minted:
                                                                  token_id, tx_hash, block, minted_at); with
                                                                  --wait-minted, followed until minted first.
                                                                  `mintpipe job` is the same verb
  mintpipe watch JOB_ID                                           its progress live (SSE) until it ends
  mintpipe jobs [--stage S] [--wallet 0x…] [--since 1h|ISO] [--limit N]   newest first

Exit codes: 0 done (a watched job pinned or minted); 1 the bridge refused, or the job failed; 2 usage (a bad
file or option); 3 nothing answers at the bridge's address (is `mintpipe up` running?).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

DONE = {"pinned", "minted"}
TERMINAL = DONE | {"failed"}
NOT_RUNNING = 3


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def default_url() -> str:
    return os.environ.get("MINTPIPE_URL") or f"http://127.0.0.1:{os.environ.get('MINTPIPE_HTTP_PORT', '8080')}"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    def url(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--url", default=default_url(), help="the bridge (default: MINTPIPE_URL or 127.0.0.1:8080)")
        return p

    submit = url(sub.add_parser("submit", help="submit a job from a settings file"))
    submit.add_argument("settings", type=Path, help='settings JSON, or {"settings": …, "wallet": …, "scene": …}')
    submit.add_argument("--wallet", help="the wallet that will own the token (else the file's)")
    submit.add_argument("--scene", help="scene name (default gen1)")
    submit.add_argument("--key", help="Idempotency-Key: submitting again with it returns the same job")
    submit.add_argument("--wait", action="store_true", help="follow its progress until it ends")
    # One verb, two names: `job` came with the chain, `status` with the operators' CLI; they printed the same.
    status = url(sub.add_parser("status", aliases=["job"], help="a job (and its mint) as JSON"))
    status.add_argument("job_id")
    status.add_argument("--wait-minted", action="store_true", help="follow the job until it is minted (or failed)")
    url(sub.add_parser("watch", help="follow a job's progress until it ends")).add_argument("job_id")
    jobs = url(sub.add_parser("jobs", help="list jobs, newest first"))
    jobs.add_argument("--stage", help="queued, rendering, rendered, pinning, pinned, minted or failed")
    jobs.add_argument("--wallet")
    jobs.add_argument("--since", help="only jobs created since: 30m, 2h, 1d, or an ISO 8601 time")
    jobs.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")


def parse_since(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text.strip())
    if match:
        return time.time() - float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--since: 30m, 2h, 1d or an ISO 8601 time, not {text!r}", 2) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        reply = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise CliError(f"nothing answers at {client.base_url} ({type(exc).__name__}): is `mintpipe up` running? "
                       "(else give --url or MINTPIPE_HTTP_PORT)", NOT_RUNNING) from None
    try:
        body = reply.json()
    except ValueError:
        raise CliError(f"{client.base_url} answered HTTP {reply.status_code}, not JSON: is this mintpipe's "
                       "bridge?") from None
    if not reply.is_success:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise CliError(f"HTTP {reply.status_code}: {error.get('message') or reply.reason_phrase}")
    return body


def _bar(job: dict[str, Any], width: int = 30) -> str:
    filled = width * int(job["progress"]) // 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {job['progress']:3d}% {job['stage']}"


def follow(client: httpx.Client, job_id: str, until: str = "pinned") -> dict[str, Any]:
    """Show the job's progress from its SSE stream until a terminal stage (with until="minted": minted or
    failed); returns the last state."""
    ends = TERMINAL if until == "pinned" else {"minted", "failed"}
    tty = sys.stderr.isatty()
    last: dict[str, Any] | None = None
    shown = ""
    while True:
        try:
            with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", params={"until": until},
                             timeout=httpx.Timeout(10, read=60)) as events:
                if events.response.status_code == 404:
                    raise CliError(f"no job {job_id}")
                for event in events.iter_sse():
                    if event.event != "job":
                        continue
                    last = json.loads(event.data)
                    line = _bar(last)
                    if tty:
                        print("\r" + line, end="", file=sys.stderr, flush=True)
                    elif line.split("] ")[1].split()[-1] != shown:  # one line per stage in a log
                        print(line, file=sys.stderr, flush=True)
                    shown = last["stage"]
                    if last["stage"] in ends:
                        if tty:
                            print(file=sys.stderr)
                        return last
        except httpx.TransportError as exc:
            if last is None:
                raise CliError(f"nothing answers at {client.base_url} ({type(exc).__name__}): is `mintpipe up` "
                               "running?", NOT_RUNNING) from None
        # The stream ended early (a bridge restarting, or a proxy's timeout): pick it up again.
        time.sleep(1)


def wait_minted(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    """Follows a job to pinned, then (when this service has a chain: a pinned job carries `mint`) to minted;
    returns the job as read last (with its mint's fields)."""
    path = f"/v1/jobs/{job['job_id']}"
    if job["stage"] not in TERMINAL:
        follow(client, job["job_id"])
        job = _request(client, "GET", path)
    if job["stage"] == "pinned" and job.get("mint") is None:
        raise CliError("--wait-minted: this service runs without a chain, so a pinned job is never minted here")
    if job["stage"] == "pinned":
        follow(client, job["job_id"], until="minted")
        job = _request(client, "GET", path)
    return job


def _finished(job: dict[str, Any]) -> int:
    print(json.dumps(job, indent=2))
    if job["stage"] == "failed":
        print(f"mintpipe: job {job['job_id']} failed: {job.get('error')}", file=sys.stderr)
        return 1
    if job.get("token_uri"):
        print(f"mintpipe: pinned; token URI {job['token_uri']}", file=sys.stderr)
    return 0


def _settings_body(args: argparse.Namespace) -> dict[str, Any]:
    try:
        data = json.loads(args.settings.read_text())
    except FileNotFoundError:
        raise CliError(f"{args.settings}: no such file", 2) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"{args.settings}: not a JSON file ({exc})", 2) from None
    if not isinstance(data, dict):
        raise CliError(f"{args.settings}: must hold a JSON object", 2)
    body = data if "settings" in data else {"settings": data}
    if args.wallet:
        body["wallet"] = args.wallet
    if args.scene:
        body["scene"] = args.scene
    if not body.get("wallet"):
        raise CliError("--wallet: give the wallet that will own the token (or put \"wallet\" in the file)", 2)
    return body


def run(args: argparse.Namespace) -> int:
    try:
        with httpx.Client(base_url=args.url, timeout=30) as client:
            if args.command == "submit":
                headers = {"Idempotency-Key": args.key} if args.key else {}
                accepted = _request(client, "POST", "/v1/jobs", json=_settings_body(args), headers=headers)
                print(f"mintpipe: job {accepted['job_id']} {accepted['stage']}", file=sys.stderr)
                if not args.wait:
                    print(json.dumps(accepted, indent=2))
                    return 0
                return _finished(follow(client, accepted["job_id"]))
            if args.command in ("status", "job"):
                job = _request(client, "GET", f"/v1/jobs/{args.job_id}")  # 404 and "not running" said plainly
                if args.wait_minted and job["stage"] not in ("minted", "failed"):
                    job = wait_minted(client, job)
                print(json.dumps(job, indent=2))
                return 1 if args.wait_minted and job["stage"] == "failed" else 0
            if args.command == "watch":
                _request(client, "GET", f"/v1/jobs/{args.job_id}")  # 404 and "not running" said plainly first
                return _finished(follow(client, args.job_id))
            return list_jobs(client, args)
    except CliError as exc:
        print(f"mintpipe: {exc}", file=sys.stderr)
        return exc.code


def list_jobs(client: httpx.Client, args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    if not 1 <= args.limit <= 10_000:
        raise CliError("--limit: 1-10000", 2)
    params: dict[str, Any] = {"limit": min(args.limit, 100)}
    if args.stage:
        params["stage"] = args.stage
    if args.wallet:
        params["wallet"] = args.wallet
    shown = 0
    while True:
        page = _request(client, "GET", "/v1/jobs", params=params)
        for job in page["jobs"]:
            created = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00")).timestamp()
            if since is not None and created < since:  # newest first: everything after is older still
                return 0
            print(f"{job['job_id']}  {job['stage']:<9} {job['progress']:3d}%  {job['created_at']}  {job['wallet']}"
                  + (f"  {job['error']}" if job.get("error") else ""))
            shown += 1
            if shown >= args.limit:
                return 0
        if not page.get("next_cursor"):
            return 0
        params["cursor"] = page["next_cursor"]
