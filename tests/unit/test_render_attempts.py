"""Two attempts of one job rendering into one folder at the same time (a redelivery while a deadline-stopped
thread still runs; in compose every replica is PID 1): each writes under temp names of its own, so both finish
and what is left is whole, byte-identical to a render alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from renderer.render import render_job

pytestmark = [pytest.mark.unit, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"seed": 11, "frames": 40, "size": 256}


@pytest.fixture(scope="module")
def alone(tmp_path_factory) -> dict[str, str]:
    """sha256 of each asset rendered by a single attempt."""
    return {a.kind: a.sha256 for a in render_job("gen1", SETTINGS, tmp_path_factory.mktemp("alone"))}


def _assert_whole(out: Path, alone: dict[str, str]) -> None:
    from mintpipe.objects.artifacts import sha256_file

    names = {"image": "image.gif", "animation": "animation.mp4", "preview": "preview.png"}
    assert {k: sha256_file(out / n) for k, n in names.items()} == alone
    assert sorted(p.name for p in out.iterdir()) == sorted(names.values()), "temp files left behind"


def test_two_attempts_in_one_process(tmp_path, alone):
    out = tmp_path / "job"
    start = threading.Barrier(2)
    results: list[object] = [None, None]

    def attempt(i: int) -> None:
        start.wait()
        try:
            results[i] = {a.kind: a.sha256 for a in render_job("gen1", SETTINGS, out)}
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [alone, alone]
    _assert_whole(out, alone)


CHILD = """
import json, sys, time, os
from pathlib import Path
from renderer.render import render_job
out, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
assets = render_job("gen1", json.loads(sys.argv[3]), out)
print(json.dumps({"pid": os.getpid(), "assets": {a.kind: a.sha256 for a in assets}}))
"""


def test_two_replicas_that_are_both_pid_1(tmp_path, alone):
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("this test needs util-linux's unshare (a PID namespace per replica, as compose gives)")
    out, go = tmp_path / "job", tmp_path / "go"
    command = [unshare, "--pid", "--fork", sys.executable, "-c", CHILD, str(out), str(go), json.dumps(SETTINGS)]
    children = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    import time

    time.sleep(3)  # both have imported everything and wait at the start line
    go.touch()
    answers = []
    for child in children:
        stdout, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr[-3000:]
        answers.append(json.loads(stdout.strip().splitlines()[-1]))
    assert [a["pid"] for a in answers] == [1, 1], "each replica must be PID 1 in its own namespace"
    assert [a["assets"] for a in answers] == [alone, alone]
    _assert_whole(out, alone)
