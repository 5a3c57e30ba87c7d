"""The operators' hand-written pieces: the overview's percentile (checked against numpy's), when a queue counts as
growing, and the session cookie's signature and expiry."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from starlette.requests import Request

from status.ops.auth import OpsAuth
from status.ops.overview import QueueSampler, percentile

pytestmark = pytest.mark.unit


def test_percentile_is_numpys_nearest_rank():
    rng = random.Random(3)
    for _ in range(300):
        values = [rng.uniform(0, 100) for _ in range(rng.randint(1, 60))]
        for q in (1, 50, 95, 99, 100):
            assert percentile(values, q) == pytest.approx(np.percentile(values, q, method="inverted_cdf"))
    assert percentile([], 50) is None


def test_a_queue_is_growing_only_after_three_rises_in_a_row():
    sampler = QueueSampler()
    t = 1000.0
    seen = [sampler.add("q", depth, t + i * 3) for i, depth in enumerate([1, 2, 3, 4, 5, 5, 6, 7, 8])]
    assert seen == [False, False, False, True, True, False, False, False, True]
    # Refreshes within a second of each other say nothing new.
    assert sampler.add("q", 100, t + 8 * 3 + 0.5) is True and list(sampler.samples["q"])[-1][1] == 8


def _request(cookie: str = "", authorization: str = "") -> Request:
    headers = []
    if cookie:
        headers.append((b"cookie", f"mintpipe_admin={cookie}".encode()))
    if authorization:
        headers.append((b"authorization", authorization.encode()))
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": ("10.0.0.1", 1)})


def test_a_session_is_refused_when_tampered_with_expired_or_signed_with_another_token():
    auth = OpsAuth("admin-token", "viewer-token", lambda r: r.client.host)
    good = auth.new_session("admin")
    assert auth.read_session(good).role == "admin"
    payload, _, signature = good.rpartition(".")
    role, expires, nonce = payload.split(".", 2)
    assert auth.read_session(f"viewer.{expires}.{nonce}.{signature}") is None, "role changed"
    promoted = f"admin.{expires}.{nonce}"
    assert auth.read_session(f"{promoted}.{auth._sign(promoted)}") is not None
    stale = f"admin.{int(time.time()) - 1}.{nonce}"
    assert auth.read_session(f"{stale}.{auth._sign(stale)}") is None, "expired"
    assert OpsAuth("rotated", "viewer-token", lambda r: "x").read_session(good) is None
    assert auth.principal(_request(cookie=good)).role == "admin"
    # A read-only session cannot be turned into an admin one, and a CSRF token is tied to its session.
    viewer = auth.read_session(auth.new_session("viewer"))
    assert viewer.role == "viewer"
    assert auth.csrf_token(viewer) != auth.csrf_token(auth.read_session(good))
