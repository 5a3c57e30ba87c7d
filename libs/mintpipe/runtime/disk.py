"""How full the data volume is, and what that means for new work.

Every service writes under one data folder (a shared volume in compose): artifacts, the local IPFS store, the
job store. When it fills, every service fails at once, so the bridge says so early: `degraded` in its health
when the volume is nearly full, and new jobs refused with a 503 before it is full, while there is still room
for the jobs already accepted to finish (a default job writes about 10 MB).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DiskUse:
    total: int
    free: int  # bytes an unprivileged writer may still use

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free / self.total if self.total else 0.0


def disk_use(path: Path) -> DiskUse:
    """The filesystem holding `path` (or its nearest existing parent)."""
    try:
        stat = os.statvfs(path)  # the usual case in one system call (the bridge asks on every submission)
    except (FileNotFoundError, NotADirectoryError):
        path = Path(path)
        while not path.exists() and path != path.parent:
            path = path.parent
        stat = os.statvfs(path)
    return DiskUse(total=stat.f_blocks * stat.f_frsize, free=stat.f_bavail * stat.f_frsize)


@dataclass(frozen=True)
class DiskGuard:
    """`degraded` under `degraded_free_percent` free; new jobs refused under `refuse_free_percent` free."""

    path: Path
    degraded_free_percent: float = 10.0
    refuse_free_percent: float = 5.0

    def use(self) -> DiskUse:
        return disk_use(self.path)

    def healthy(self) -> bool:
        return self.use().free_percent >= self.degraded_free_percent

    def refusal(self) -> str | None:
        """Why new jobs are refused now (None while there is room)."""
        use = self.use()
        if use.free_percent >= self.refuse_free_percent:
            return None
        return (f"disk: the data volume is {100 - use.free_percent:.1f}% full ({use.free // 2**20} MiB free); new "
                f"jobs are refused below {self.refuse_free_percent:g}% free so that accepted ones can finish. "
                "Retry later")

    def snapshot(self) -> dict[str, float | int]:
        use = self.use()
        return {"total_bytes": use.total, "free_bytes": use.free, "free_percent": round(use.free_percent, 2),
                "degraded_below_percent": self.degraded_free_percent, "refuse_below_percent": self.refuse_free_percent}
