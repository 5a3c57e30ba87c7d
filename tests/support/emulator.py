"""The Pinata emulator as a real HTTP server on loopback, in its own process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.conftest import free_port


@dataclass
class Emulator:
    url: str
    jwt: str
    process: subprocess.Popen

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_emulator/stats", timeout=5).json()

    def requests(self, since: float = 0.0) -> list[dict]:
        """API requests that arrived at or after `since` (epoch seconds): at, method, path, cid, status and
        the Retry-After header it was answered with (or None)."""
        return httpx.get(f"{self.url}/_emulator/requests", params={"since": since}, timeout=5).json()

    def fault(self, **fault) -> None:
        httpx.post(f"{self.url}/_emulator/faults", json=fault, timeout=5).raise_for_status()


@contextmanager
def running_emulator(jwt: str = "test-jwt", rate_limit: int = 1000, window: float = 60.0) -> Iterator[Emulator]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "pinata_emulator", "--port", str(port), "--jwt", jwt,
                                "--rate-limit", str(rate_limit), "--window", str(window)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_emulator/stats", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the Pinata emulator did not start") from None
                time.sleep(0.1)
        yield Emulator(url, jwt, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
