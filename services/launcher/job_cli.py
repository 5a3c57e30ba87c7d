"""`mintpipe mint ID`: report a job's mint, or ask the service to relay it, through the bridge's HTTP API.

  mintpipe mint JOB_ID --tx-hash 0x… | --relay --claim-token T   report a mint sent from a wallet, or ask the
                                                                 service to relay it (with the submission's
                                                                 claim_token, or MINTPIPE_CLAIM_TOKEN)

(A job and its mint are shown by `mintpipe status JOB_ID [--wait-minted]`, also called `mintpipe job`: see
launcher.jobs_cli.) Exit 0 on success, 1 when the bridge refuses (one line on stderr saying why) or cannot be
reached."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx

from launcher.jobs_cli import default_url


def add_parsers(sub: argparse._SubParsersAction) -> None:
    url = default_url()
    mint = sub.add_parser("mint", help="report a mint transaction, or ask the service to relay the mint")
    mint.add_argument("job_id")
    how = mint.add_mutually_exclusive_group(required=True)
    how.add_argument("--tx-hash", help="the mint transaction a wallet sent")
    how.add_argument("--relay", action="store_true", help="the service sends the mint and pays the gas")
    mint.add_argument("--claim-token", default=os.environ.get("MINTPIPE_CLAIM_TOKEN"),
                      help="with --relay: the claim_token `mintpipe submit` printed (or MINTPIPE_CLAIM_TOKEN)")
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
            if args.relay and not args.claim_token:
                return _fail("--relay needs --claim-token (the claim_token printed when the job was submitted)")
            body = {"relay": True, "claim_token": args.claim_token} if args.relay else {"tx_hash": args.tx_hash}
            return _answer(client.post(f"/v1/jobs/{args.job_id}/mint", json=body))
    except httpx.HTTPError as exc:
        return _fail(f"cannot reach the bridge at {args.url}: {type(exc).__name__}: {exc}")
