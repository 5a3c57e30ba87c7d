"""`mintpipe demo`: one example job end to end against a running system, shown as it happens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from mintpipe.ipfs_store import LocalIpfsStore

EXAMPLE_WALLET = "0x000000000000000000000000000000000000dEaD"


def _bar(progress: int, width: int = 30) -> str:
    filled = width * progress // 100
    return "#" * filled + "-" * (width - filled)


def run_example(base_url: str, data_dir: Path, settings: dict[str, Any], wallet: str = EXAMPLE_WALLET) -> int:
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        reply = client.post("/v1/jobs", json={"settings": settings, "wallet": wallet})
        if reply.status_code != 202:
            print(f"submission refused ({reply.status_code}): {reply.text}")
            return 1
        job_id = reply.json()["job_id"]
        print(f"submitted job {job_id} with settings {json.dumps(settings)}")
        job: dict[str, Any] = {}
        with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", timeout=None) as events:
            for event in events.iter_sse():
                job = json.loads(event.data)
                print(f"  {time.monotonic() - started:6.1f}s  {job['stage']:<10} [{_bar(job['progress'])}] "
                      f"{job['progress']:3d}%", flush=True)
    if job.get("stage") != "pinned":
        print(f"job ended {job.get('stage')}: {job.get('error')}")
        return 1
    store = LocalIpfsStore(data_dir / "ipfs")
    gif_cid = job["assets"]["image"].removeprefix("ipfs://")
    gif = store.get(gif_cid)
    print(f"\ndone in {time.monotonic() - started:.1f}s")
    print(f"token URI : {job['token_uri']}")
    print(f"metadata  : {base_url}/ipfs/{job['token_uri'].removeprefix('ipfs://')}")
    print(f"GIF       : {base_url}/ipfs/{gif_cid}")
    if gif is not None:
        print(f"GIF file  : {gif.path}")
    for kind in ("animation", "preview"):
        if job["assets"].get(kind):
            print(f"{kind:<10}: {base_url}/ipfs/{job['assets'][kind].removeprefix('ipfs://')}")
    return 0
