"""The local node helper (mintpipe.chain.Anvil) that the launcher and the tests start: a free port of its own
choosing, funded dev keys, and no node left behind when whoever started it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from web3 import Web3

from mintpipe.chain import Anvil

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(60)]


def test_two_nodes_get_their_own_ports_and_funded_keys_and_stop() -> None:
    with Anvil() as one, Anvil(chain_id=31338) as two:
        assert one.port != two.port and one.port > 0
        for node in (one, two):
            w3 = Web3(Web3.HTTPProvider(node.url))
            assert w3.eth.chain_id == node.chain_id
            assert len(node.private_keys) == 10
            funded = w3.eth.account.from_key(node.private_keys[3]).address
            assert w3.eth.get_balance(funded) > 0
        process = one.process
    assert process.poll() is not None  # stopped on leaving the block


def test_the_node_dies_with_the_process_that_started_it() -> None:
    code = ("from mintpipe.chain import Anvil; a = Anvil().start(); print(a.process.pid, flush=True); "
            "import time; time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    anvil_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)  # no cleanup code runs in the parent
    parent.wait()
    deadline = time.monotonic() + 20
    while True:
        try:
            os.kill(anvil_pid, 0)
        except ProcessLookupError:
            return
        try:
            with open(f"/proc/{anvil_pid}/stat") as stat:
                if stat.read().split()[2] == "Z":  # exited; waiting for init to reap it
                    return
        except FileNotFoundError:
            return
        assert time.monotonic() < deadline, "anvil outlived the process that started it"
        time.sleep(0.1)
