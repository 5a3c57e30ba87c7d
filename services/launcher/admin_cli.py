"""`mintpipe admin …`: the operator routes from a terminal (token from MINTPIPE_ADMIN_TOKEN)."""

from __future__ import annotations

import argparse
import json
import os
import sys

import httpx


def add_parser(sub: argparse._SubParsersAction) -> None:
    admin = sub.add_parser("admin", help="dead letters, replay, cancel (needs MINTPIPE_ADMIN_TOKEN)")
    admin.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('MINTPIPE_HTTP_PORT', '8080')}")
    verbs = admin.add_subparsers(dest="verb", required=True)
    dead = verbs.add_parser("dead-letters", help="list dead letters of a queue with their reasons")
    dead.add_argument("queue", choices=["render", "pin", "events"])
    replay = verbs.add_parser("replay", help="send dead letters back to their queue")
    replay.add_argument("queue", choices=["render", "pin", "events"])
    replay.add_argument("--id", dest="ids", action="append", help="message id (repeatable); all when omitted")
    cancel = verbs.add_parser("cancel", help="cancel a job")
    cancel.add_argument("job_id")


def run(args: argparse.Namespace) -> int:
    token = os.environ.get("MINTPIPE_ADMIN_TOKEN")
    if not token:
        print("set MINTPIPE_ADMIN_TOKEN to the bridge's admin token", file=sys.stderr)
        return 2
    with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        if args.verb == "dead-letters":
            reply = client.get(f"/v1/admin/dead-letters/{args.queue}")
        elif args.verb == "replay":
            reply = client.post(f"/v1/admin/dead-letters/{args.queue}/replay", json={"message_ids": args.ids})
        else:
            reply = client.post(f"/v1/admin/jobs/{args.job_id}/cancel")
    print(json.dumps(reply.json(), indent=2))
    return 0 if reply.is_success else 1
