"""Job stages: their names, which ones end a watch, the overall progress bands, and job and replica ids. No broker
here: the progress events every stage publishes are mintpipe.messaging.events."""

from __future__ import annotations

import os
import re
import socket

from mintpipe.v1 import jobs_pb2

Stage = jobs_pb2.Stage

STAGE_NAMES: dict[int, str] = {
    jobs_pb2.STAGE_QUEUED: "queued",
    jobs_pb2.STAGE_RENDERING: "rendering",
    jobs_pb2.STAGE_RENDERED: "rendered",
    jobs_pb2.STAGE_PINNING: "pinning",
    jobs_pb2.STAGE_PINNED: "pinned",
    jobs_pb2.STAGE_MINTED: "minted",
    jobs_pb2.STAGE_FAILED: "failed",
}
STAGES_BY_NAME = {name: value for value, name in STAGE_NAMES.items()}

# Where the stream of changes ends for a watcher: nothing more will happen without a person acting.
TERMINAL_STAGES = frozenset({jobs_pb2.STAGE_PINNED, jobs_pb2.STAGE_MINTED, jobs_pb2.STAGE_FAILED})
# For a watcher that follows a job on to the chain (the mint page): pinned is not the end there.
UNTIL_MINTED = frozenset({jobs_pb2.STAGE_MINTED, jobs_pb2.STAGE_FAILED})

# Overall progress bands: render takes most of the time, pinning the rest.
RENDER_START, RENDER_END = 1, 70
PIN_START, PIN_END = 71, 99


_JOB_ID = re.compile(r"[0-9a-f]{32}")


def is_job_id(value: str) -> bool:
    """Job ids are 32 lowercase hex digits (uuid4().hex); anything else was never issued."""
    return _JOB_ID.fullmatch(value) is not None


def stage_name(stage: int) -> str:
    return STAGE_NAMES.get(stage, "unspecified")


def band(start: int, end: int, fraction_percent: float) -> int:
    """Map 0-100 within a stage onto the overall 0-100 scale."""
    fraction = min(max(fraction_percent, 0.0), 100.0) / 100.0
    return start + int(round((end - start) * fraction))


def replica_id() -> str:
    """Which replica this process is, for the operators' stage history: the launcher names each one
    (MINTPIPE_REPLICA, e.g. renderer-1); elsewhere (compose, a bare `python -m`) the host and pid."""
    return os.environ.get("MINTPIPE_REPLICA") or f"{socket.gethostname()}:{os.getpid()}"
