"""The minter at start: what cannot work stops it with exit 2 naming the variable, before it touches anything;
what it answers never carries the private node's URL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mintpipe.chain import Anvil
from tests.support.chain_status import running_status

pytestmark = [pytest.mark.integration, pytest.mark.chain, pytest.mark.timeout(120)]


def run_minter(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if "CHAIN_" not in k}
    return subprocess.run([sys.executable, "-m", "minter"], env={**inherited, "MINTPIPE_DATA_DIR": str(tmp_path),
                                                               "MINTER_GRPC_PORT": "0", **env},
                          capture_output=True, text=True, timeout=60)


def test_anvils_well_known_keys_are_refused_on_a_chain_that_is_not_a_local_one(chain, tmp_path) -> None:
    with Anvil(chain_id=5) as testnet_like:  # chain id 5: not a local dev chain
        env = {**chain.env(), "MINTPIPE_CHAIN_RPC_URL": testnet_like.url}
        done = run_minter(env, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "MINTPIPE_CHAIN_SIGNER_KEY" in done.stderr and "refused on chain 5" in done.stderr
    for key in (chain.signer_key, chain.relayer_key):
        assert key.removeprefix("0x") not in done.stderr + done.stdout


@pytest.mark.parametrize(("change", "variable"), [
    ({"MINTPIPE_CHAIN_CONTRACT": ""}, "CHAIN_CONTRACT"),
    ({"MINTPIPE_CHAIN_CONTRACT": "0x1234"}, "CHAIN_CONTRACT"),
    ({"MINTPIPE_CHAIN_SIGNER_KEY": ""}, "CHAIN_SIGNER_KEY"),
    ({"MINTPIPE_CHAIN_RPC_URL": ""}, "CHAIN_RPC_URL"),
])
def test_settings_that_cannot_work_name_the_variable(chain, tmp_path, change, variable) -> None:
    env = {k: v for k, v in {**chain.env(), **change}.items() if v}
    done = run_minter(env, tmp_path)
    assert done.returncode == 2 and variable in done.stderr, done.stderr


def test_a_contract_address_without_code_is_refused(chain, tmp_path) -> None:
    done = run_minter({**chain.env(), "MINTPIPE_CHAIN_CONTRACT": chain.address_of(chain.collector_keys[6])}, tmp_path)
    assert done.returncode == 2 and "MINTPIPE_CHAIN_CONTRACT: no contract code" in done.stderr, done.stderr


async def test_the_chain_description_never_names_the_private_node(chain, tmp_path, amqp) -> None:
    private = chain.url.replace("127.0.0.1", "localhost") + "/v2/AbCdEf0123456789AbCdEf0123456789"
    async with running_status(chain, tmp_path, amqp=amqp, chain_public_rpc_url=None) as status:
        info = (await status.client.get("/v1/chain")).json()
        assert info["rpc_url"] is None and info["chain_id"] == chain.chain_id
        assert chain.url not in (await status.client.get("/v1/chain")).text
    async with running_status(chain, tmp_path / "public", amqp=amqp, chain_public_rpc_url=private) as status:
        assert (await status.client.get("/v1/chain")).json()["rpc_url"] == private  # only what was given as public
