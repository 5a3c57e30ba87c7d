"""What the emulator remembers: pins, the sliding request window, injected faults, counters."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Pin:
    id: str
    cid: str
    size: int
    name: str
    keyvalues: dict[str, Any]
    mime_type: str
    created_at: str
    data: bytes


@dataclass
class Fault:
    """The next `count` API requests answer `status` (0: normal answer) after `delay` seconds."""

    status: int = 0
    delay: float = 0.0
    count: int = 1
    retry_after: int | None = None
    wrong_cid: bool = False  # answer uploads with a CID that is not the content's (an integrity failure)


@dataclass
class EmulatorState:
    jwt: str
    rate_limit: int = 180  # requests per sliding minute, as Pinata's documented API limit
    window_seconds: float = 60.0
    max_upload_bytes: int = 100 * 1024 * 1024
    pins: dict[str, Pin] = field(default_factory=dict)
    uploads_per_cid: Counter[str] = field(default_factory=Counter)
    faults: deque[Fault] = field(default_factory=deque)
    stats: Counter[str] = field(default_factory=Counter)
    _window: deque[float] = field(default_factory=deque)
    _max_in_window: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> tuple[bool, int, int, float]:
        """Count one request against the sliding window: (allowed, limit, remaining, reset_epoch)."""
        with self._lock:
            now = time.time()
            while self._window and self._window[0] <= now - self.window_seconds:
                self._window.popleft()
            allowed = len(self._window) < self.rate_limit
            if allowed:
                self._window.append(now)
                self._max_in_window = max(self._max_in_window, len(self._window))
            reset = (self._window[0] + self.window_seconds) if self._window else now
            self.stats["requests"] += 1
            if not allowed:
                self.stats["rate_limited"] += 1
            return allowed, self.rate_limit, max(self.rate_limit - len(self._window), 0), reset

    def next_fault(self) -> Fault | None:
        with self._lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.count -= 1
            if fault.count <= 0:
                self.faults.popleft()
            return Fault(fault.status, fault.delay, 1, fault.retry_after, fault.wrong_cid)

    def add_pin(self, cid: str, data: bytes, name: str, keyvalues: dict[str, Any], mime_type: str) -> tuple[Pin, bool]:
        with self._lock:
            self.uploads_per_cid[cid] += 1
            self.stats["uploads"] += 1
            existing = self.pins.get(cid)
            if existing is not None:
                return existing, True
            pin = Pin(str(uuid.uuid4()), cid, len(data), name, keyvalues, mime_type, now_iso(), data)
            self.pins[cid] = pin
            return pin, False

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pins": len(self.pins),
                "uploads_per_cid": dict(self.uploads_per_cid),
                "requests": self.stats["requests"],
                "rate_limited": self.stats["rate_limited"],
                "faults_served": self.stats["faults"],
                "max_requests_in_window": self._max_in_window,
                "rate_limit": self.rate_limit,
                "window_seconds": self.window_seconds,
            }
