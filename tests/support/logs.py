"""The real logging configuration with its output in a buffer, for tests that check what a service logs."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from mintpipe.runtime.log import configure_logging


@pytest.fixture
def lines():
    """Configure logging as a service does, write its stdout handler into a buffer, yield a reader of its JSON
    lines (`lines.raw()`: the text as written); the previous handlers, level and structlog state come back after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("test", "INFO")
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)

    def raw() -> str:
        return buffer.getvalue()

    def read() -> list[dict]:
        return [json.loads(line) for line in raw().splitlines() if line.strip()]

    read.raw = raw  # type: ignore[attr-defined]
    yield read
    root.handlers[:], level = saved
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
