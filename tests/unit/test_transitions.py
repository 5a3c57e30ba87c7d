"""Applying events: duplicates and out-of-order deliveries never regress a job."""

import random

import pytest

from mintpipe.v1 import broker_pb2, jobs_pb2
from status.jobs.transitions import JobState, apply_event

pytestmark = pytest.mark.unit

S = jobs_pb2


def ev(stage, progress=0, **kw):
    assets = kw.pop("assets", None)
    event = broker_pb2.JobEvent(job_id="a" * 32, stage=stage, progress=progress, **kw)
    if assets:
        event.assets.CopyFrom(jobs_pb2.JobAssets(**assets))
    return event


def run(state, events):
    for event in events:
        state = apply_event(state, event) or state
    return state


HAPPY = [
    ev(S.STAGE_RENDERING, 1), ev(S.STAGE_RENDERING, 20), ev(S.STAGE_RENDERING, 45), ev(S.STAGE_RENDERED, 70),
    ev(S.STAGE_PINNING, 71), ev(S.STAGE_PINNING, 85),
    ev(S.STAGE_PINNED, 100, token_uri="ipfs://bafymeta",
       assets={"image": "bafyimg", "preview": "bafkprev", "metadata": "bafymeta"}),
]


def test_in_order_events_reach_pinned_with_token_uri():
    final = run(JobState(), HAPPY)
    assert final.stage == S.STAGE_PINNED and final.progress == 100
    assert final.token_uri == "ipfs://bafymeta"
    assert final.assets["image"] == "bafyimg"


def test_duplicate_event_changes_nothing():
    state = run(JobState(), HAPPY[:3])
    assert apply_event(state, HAPPY[2]) is None


def test_late_rendering_event_does_not_move_a_pinned_job_back():
    final = run(JobState(), HAPPY)
    assert apply_event(final, ev(S.STAGE_RENDERING, 30)) is None


def test_lower_progress_never_lowers_progress():
    state = run(JobState(), [ev(S.STAGE_RENDERING, 50)])
    after = apply_event(state, ev(S.STAGE_RENDERING, 10))
    assert after is None and state.progress == 50


def test_failed_is_terminal_and_a_stale_failure_never_beats_pinned():
    failed = run(JobState(), [ev(S.STAGE_RENDERING, 10), ev(S.STAGE_FAILED, error="boom")])
    assert failed.stage == S.STAGE_FAILED and failed.error == "boom"
    assert apply_event(failed, ev(S.STAGE_PINNED, 100)) is None
    pinned = run(JobState(), HAPPY)
    assert apply_event(pinned, ev(S.STAGE_FAILED, error="late")) is None


def test_known_asset_ids_are_never_replaced():
    state = run(JobState(), HAPPY)
    assert apply_event(state, ev(S.STAGE_PINNED, 100, assets={"image": "bafyother"})) is None


@pytest.mark.parametrize("seed", range(25))
def test_any_delivery_order_with_duplicates_ends_where_in_order_delivery_does(seed):
    rng = random.Random(seed)
    shuffled = HAPPY + [rng.choice(HAPPY) for _ in range(5)]
    rng.shuffle(shuffled)
    state, seen = JobState(), []
    rank = [S.STAGE_QUEUED, S.STAGE_RENDERING, S.STAGE_RENDERED, S.STAGE_PINNING, S.STAGE_PINNED]
    for event in shuffled:
        new = apply_event(state, event)
        if new is not None:
            assert rank.index(new.stage) >= rank.index(state.stage), "stage went backwards"
            assert new.progress >= state.progress, "progress went down"
            state = new
        seen.append(state)
    assert state == run(JobState(), HAPPY)
