"""The ledger printed at the end of the chaos run: only what was measured (by the test's clients and watcher,
the broker's own counters, the emulator's upload counts and the services' logs), never what was intended."""

from __future__ import annotations

import time
from typing import Any

RENDERERS_PINNERS = "3 renderers, 2 pinners, Pinata emulator"


def render_ledger(run: Any, measured: dict[str, Any]) -> str:
    lines = [
        "=" * 78,
        f"mintpipe chaos ledger   seed={run.seed}   {RENDERERS_PINNERS}   "
        f"wall time {time.monotonic() - run.started:.1f}s",
        "=" * 78,
    ]
    for scenario, ids in run.jobs.items():
        took = run.durations.get(scenario)
        lines.append(f"scenario {scenario:<22} jobs acknowledged {len(ids):>4}"
                     + (f"   all pinned after {took:5.1f}s" if took is not None else ""))
        lines += [f"    {fault}" for fault in run.faults.get(scenario, [])]
    lines.append("-" * 78)
    width = max(len(k) for k in measured)
    lines += [f"{key:<{width}}  {value}" for key, value in measured.items()]
    lines.append("=" * 78)
    return "\n".join(lines)

