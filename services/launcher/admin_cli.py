"""`mintpipe admin …`: the operator routes from a terminal (token from MINTPIPE_ADMIN_TOKEN).

Answers go to stdout as JSON; anything that went wrong gets one line on stderr saying what to do, and a
non-zero exit (1: the bridge said no or could not be reached, 2: usage). The token itself is never printed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx


def add_parser(sub: argparse._SubParsersAction) -> None:
    admin = sub.add_parser("admin", help="dead letters, replay, retry, cancel, reverify a mint "
                           "(needs MINTPIPE_ADMIN_TOKEN)")
    admin.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('MINTPIPE_HTTP_PORT', '8080')}")
    verbs = admin.add_subparsers(dest="verb", required=True)
    dead = verbs.add_parser("dead-letters", help="list dead letters of a queue with their reasons")
    dead.add_argument("queue", choices=["render", "pin", "events"])
    replay = verbs.add_parser("replay", help="send dead letters back to their queue")
    replay.add_argument("queue", choices=["render", "pin", "events"])
    replay.add_argument("--id", dest="ids", action="append", help="message id (repeatable); all when omitted")
    cancel = verbs.add_parser("cancel", help="cancel a job")
    cancel.add_argument("job_id")
    retry = verbs.add_parser("retry", help="retry a failed job (its dead letter if it has one, else a new render)")
    retry.add_argument("job_id")
    reverify = verbs.add_parser("reverify", help="check a pinned job's mint transaction on chain again (the known "
                                "one, or --tx-hash); a confirmed mint makes the job minted")
    reverify.add_argument("job_id")
    reverify.add_argument("--tx-hash", help="the mint transaction a wallet sent (default: the one the service knows)")


def _fail(message: str) -> int:
    print(f"mintpipe admin: {message}", file=sys.stderr)
    return 1


def _error_message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"].get("code") or "")
    return ""


def run(args: argparse.Namespace) -> int:
    token = os.environ.get("MINTPIPE_ADMIN_TOKEN")
    if not token:
        print("mintpipe admin: set MINTPIPE_ADMIN_TOKEN to the bridge's admin token", file=sys.stderr)
        return 2
    try:
        with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            if args.verb == "dead-letters":
                reply = client.get(f"/v1/admin/dead-letters/{args.queue}")
            # Actions go through the audited routes (status.ops.views): the audit list shows them as `admin (bearer)`.
            elif args.verb == "replay":
                reply = client.post(f"/v1/admin/actions/replay/{args.queue}", json={"message_ids": args.ids})
            elif args.verb == "reverify":
                reply = client.post(f"/v1/admin/actions/reverify/{args.job_id}",
                                    json={"tx_hash": args.tx_hash} if args.tx_hash else None)
            elif args.verb == "retry":
                reply = client.post(f"/v1/admin/actions/retry/{args.job_id}")
            else:
                reply = client.post(f"/v1/admin/actions/cancel/{args.job_id}")
    except httpx.HTTPError as exc:
        # The exception's text names the URL, never the request headers.
        return _fail(f"cannot reach the bridge at {args.url}: {type(exc).__name__}: {exc}")
    if reply.status_code == 401:
        return _fail("the bridge refused the admin token (HTTP 401): set MINTPIPE_ADMIN_TOKEN to the token the "
                     "bridge was started with (a bridge started without one refuses every admin call)")
    try:
        body = reply.json()
    except ValueError:
        return _fail(f"unexpected answer from {args.url} (HTTP {reply.status_code}, not JSON): is this the bridge?")
    # The body is printed even on failure: a replay stopped midway says there how many went back.
    print(json.dumps(body, indent=2))
    if reply.is_success:
        return 0
    return _fail(f"HTTP {reply.status_code}: {_error_message(body) or reply.reason_phrase}")
