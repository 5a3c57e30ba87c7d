"""What the emulator remembers: pins, the sliding request window, injected faults, counters, and a log of
recent requests (so tests can check when, and for what, clients called)."""

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
    """The next `count` API requests answer `status` (0: normal answer) after `delay` seconds.

    `delay_after` holds a normal answer back after the request took effect (an upload is stored and counted):
    a client that dies meanwhile has had its upload done without ever hearing so.
    """

    status: int = 0
    delay: float = 0.0
    count: int = 1
    retry_after: int | None = None
    wrong_cid: bool = False  # answer uploads with a CID that is not the content's (an integrity failure)
    delay_after: float = 0.0
    until: float = 0.0  # an outage: every request until this epoch time gets the fault (count is ignored)


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
    # The last requests, oldest first: {"at": epoch seconds on arrival, "method", "path", "cid", "status",
    # "retry_after" (the header as sent, if any)}.
    # Bounded so that a long-running emulator (front-end development) does not grow without end.
    requests_log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=10_000))
    _window: deque[float] = field(default_factory=deque)
    _max_in_window: int = 0
    # Every API request, admitted or refused: what a client attempted, which admit() alone can never show
    # above the limit (it refuses the excess), so a client that overruns the limit shows up here.
    _attempts: deque[float] = field(default_factory=deque)
    _max_attempts_in_window: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, method: str, path: str, cid: str | None) -> dict[str, Any]:
        """Note one API request on arrival, before any fault, auth or limit decides its answer. Returns its log
        entry; the caller fills in "status" once answered."""
        with self._lock:
            now = time.time()
            self._attempts.append(now)
            while self._attempts[0] <= now - self.window_seconds:
                self._attempts.popleft()
            self._max_attempts_in_window = max(self._max_attempts_in_window, len(self._attempts))
            entry: dict[str, Any] = {"at": now, "method": method, "path": path, "cid": cid, "status": None,
                                     "retry_after": None}
            self.requests_log.append(entry)
            return entry

    def requests_since(self, since: float = 0.0) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self.requests_log if e["at"] >= since]

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
            if fault.until:
                if time.time() >= fault.until:  # the outage is over
                    self.faults.popleft()
                    return None
            else:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.popleft()
            return Fault(fault.status, fault.delay, 1, fault.retry_after, fault.wrong_cid, fault.delay_after)

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
                "max_requests_in_window": self._max_in_window,  # admitted: never above the limit
                "max_attempts_in_window": self._max_attempts_in_window,  # admitted or refused
                "rate_limit": self.rate_limit,
                "window_seconds": self.window_seconds,
            }
