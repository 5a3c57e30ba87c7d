"""`mintpipe job ID` and `mintpipe mint ID`: a job and its mint from a terminal, through the bridge's HTTP API.

  mintpipe job JOB_ID [--wait-minted]         the job as JSON (stage, token URI, and once minted: token_id,
                                              tx_hash, block, minted_at); --wait-minted follows it until minted
  mintpipe mint JOB_ID --tx-hash 0x… | --relay   report a mint sent from a wallet, or ask the service to relay it

Exit 0 on success, 1 when the bridge refuses (one line on stderr saying why) or cannot be reached."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx
from httpx_sse import connect_sse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    url = f"http://127.0.0.1:{os.environ.get('MINTPIPE_HTTP_PORT', '8080')}"
    job = sub.add_parser("job", help="show a job (and its mint) as JSON")
    job.add_argument("job_id")
    job.add_argument("--wait-minted", action="store_true", help="follow the job until it is minted (or failed)")
    job.add_argument("--url", default=url)
    mint = sub.add_parser("mint", help="report a mint transaction, or ask the service to relay the mint")
    mint.add_argument("job_id")
    how = mint.add_mutually_exclusive_group(required=True)
    how.add_argument("--tx-hash", help="the mint transaction a wallet sent")
    how.add_argument("--relay", action="store_true", help="the service sends the mint and pays the gas")
    mint.add_argument("--url", default=url)


def _fail(message: str) -> int:
    print(f"mintpipe: {message}", file=sys.stderr)
    return 1


def _answer(reply: httpx.Response) -> int:
    try:
        body: Any = reply.json()
    except ValueError:
        return _fail(f"unexpected answer (HTTP {reply.status_code}, not JSON): is this the bridge?")
    print(json.dumps(body, indent=2))
    if reply.is_success:
        return 0
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return _fail(f"HTTP {reply.status_code}: {error.get('message') or reply.reason_phrase}")


def run(args: argparse.Namespace) -> int:
    try:
        with httpx.Client(base_url=args.url, timeout=30) as client:
            if args.command == "mint":
                body = {"relay": True} if args.relay else {"tx_hash": args.tx_hash}
                return _answer(client.post(f"/v1/jobs/{args.job_id}/mint", json=body))
            if args.wait_minted:
                with connect_sse(client, "GET", f"/v1/jobs/{args.job_id}/events", params={"until": "minted"},
                                 timeout=httpx.Timeout(10, read=None)) as events:
                    if events.response.status_code != 200:
                        events.response.read()
                        return _answer(events.response)
                    for event in events.iter_sse():
                        if event.event == "job" and event.data:
                            job = json.loads(event.data)
                            print(f"{job['stage']} {job['progress']}%", file=sys.stderr, flush=True)
            return _answer(client.get(f"/v1/jobs/{args.job_id}"))
    except httpx.HTTPError as exc:
        return _fail(f"cannot reach the bridge at {args.url}: {type(exc).__name__}: {exc}")
