"""How many threads a replica's next render gets: the configured count while a core is spare, one on a busy
machine (the bytes are the same either way: test_gen1_kernel.py compares render_job at 1, 2 and more threads)."""

from __future__ import annotations

import os

import pytest

from renderer.consumer import threads_for_now

pytestmark = pytest.mark.unit


def _machine(monkeypatch, cores: int, load: float) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))


def test_an_idle_machine_gets_every_configured_thread(monkeypatch):
    _machine(monkeypatch, cores=2, load=0.4)
    assert threads_for_now(2) == 2
    assert threads_for_now(4) == 4


def test_a_busy_machine_renders_on_one_thread(monkeypatch):
    _machine(monkeypatch, cores=2, load=2.0)  # every core's worth of work already waiting
    assert threads_for_now(2) == 1
    _machine(monkeypatch, cores=8, load=3.0)  # the same load on more cores leaves some spare
    assert threads_for_now(2) == 2


def test_one_configured_thread_stays_one(monkeypatch):
    _machine(monkeypatch, cores=2, load=0.0)
    assert threads_for_now(1) == 1
