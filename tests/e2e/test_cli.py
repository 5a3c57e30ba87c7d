"""`mintpipe submit|status|watch|jobs` against a running system, as a user types them; and what they say when
nothing is running or the admin token is wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
WALLET = "0x000000000000000000000000000000000000c0DE"


def mintpipe(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_submit_waits_with_progress_then_status_watch_and_jobs_agree(system: System, tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"seed": 9, "frames": 20, "size": 128}))
    done = mintpipe("submit", str(settings), "--wallet", WALLET, "--wait", "--url", system.base_url)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["stage"] == "pinned" and job["token_uri"].startswith("ipfs://")
    # Not a terminal here: one progress line per stage, ending pinned at 100 %.
    lines = [li for li in done.stderr.splitlines() if li.startswith("[")]
    assert lines and lines[-1].endswith("100% pinned")
    assert any("rendering" in li for li in lines)
    assert f"token URI {job['token_uri']}" in done.stderr

    status = mintpipe("status", job["job_id"], "--url", system.base_url)
    assert status.returncode == 0 and json.loads(status.stdout)["token_uri"] == job["token_uri"]
    aliased = mintpipe("job", job["job_id"], "--url", system.base_url)  # the chain's name for the same verb
    assert aliased.returncode == 0 and aliased.stdout == status.stdout
    watched = mintpipe("watch", job["job_id"], "--url", system.base_url)
    assert watched.returncode == 0 and json.loads(watched.stdout)["stage"] == "pinned"

    listed = mintpipe("jobs", "--wallet", WALLET, "--since", "10m", "--url", system.base_url)
    assert listed.returncode == 0
    assert [li.split()[0] for li in listed.stdout.splitlines()] == [job["job_id"]]
    assert mintpipe("jobs", "--wallet", WALLET, "--since", "2999-01-01T00:00:00Z",
                    "--url", system.base_url).stdout == ""
    pinned = mintpipe("jobs", "--stage", "pinned", "--url", system.base_url)
    assert job["job_id"] in pinned.stdout

    unknown = mintpipe("status", "0" * 32, "--url", system.base_url)
    assert unknown.returncode == 1 and "HTTP 404" in unknown.stderr
    also = mintpipe("job", "0" * 32, "--url", system.base_url)
    assert (also.returncode, also.stderr, also.stdout) == (unknown.returncode, unknown.stderr, unknown.stdout)


def test_bad_input_and_a_system_that_is_not_running_are_said_plainly(tmp_path):
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = mintpipe("jobs", "--url", nowhere)
    assert down.returncode == 3 and "is `mintpipe up` running?" in down.stderr
    settings = tmp_path / "s.json"
    settings.write_text('{"seed": 1}')
    assert mintpipe("submit", str(settings), "--wallet", WALLET, "--url", nowhere).returncode == 3
    no_wallet = mintpipe("submit", str(settings), "--url", nowhere)
    assert no_wallet.returncode == 2 and "--wallet" in no_wallet.stderr
    settings.write_text("not json")
    assert mintpipe("submit", str(settings), "--wallet", WALLET).returncode == 2
    assert mintpipe("jobs", "--since", "last week", "--url", nowhere).returncode == 2


def test_a_wrong_admin_token_is_refused_with_a_clear_message(system: System):
    wrong = mintpipe("admin", "--url", system.base_url, "dead-letters", "render",
                     env={"MINTPIPE_ADMIN_TOKEN": "not-the-token"})
    assert wrong.returncode == 1 and "refused the admin token" in wrong.stderr
    assert "not-the-token" not in wrong.stderr + wrong.stdout
