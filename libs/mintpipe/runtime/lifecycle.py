"""Process lifecycle: wait for SIGTERM/SIGINT as an asyncio event."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Coroutine
from typing import Any

import uvloop


def shutdown_event() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (call inside the running loop)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event


def freeze_startup_heap(young_threshold: int = 10_000) -> None:
    """Call once a service is up. Its imports (web3, grpc, FastAPI, pydantic models...) leave ~125k objects
    that live as long as the process; every full collection walked them all: 50-300 ms with the whole service
    stopped, measured in the status process, i.e. the submit path's worst tail. Frozen, collections skip them.
    A larger young generation (700 by default) also makes the collections of per-request garbage rarer."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run on uvloop (libuv's event loop, in C): measured on the submit path (bench/bridge.py --baseline),
    the status process's and the gateway's CPU per submission, where the loop's own Python is a large part."""
    return uvloop.run(main)
