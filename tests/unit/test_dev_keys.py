"""anvil's well-known dev keys are recognised (checked against the mnemonic itself) and refused off a dev chain."""

import pytest
from eth_account import Account

from mintpipe.dev_keys import DEV_ADDRESSES, LOCAL_CHAIN_IDS, is_dev_key, refuse_dev_keys

pytestmark = pytest.mark.unit

MNEMONIC = "test test test test test test test test test test test junk"


def _derived() -> list[Account]:
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(10)]


DERIVED = _derived()
DEV_KEYS = [account.key.hex() for account in DERIVED]  # eth_account 0.14: no 0x prefix
RANDOM_KEY = "0x" + Account.create().key.hex().removeprefix("0x")


def test_the_module_holds_exactly_the_mnemonics_ten_addresses():
    assert list(DEV_ADDRESSES) == [account.address for account in DERIVED]
    assert DEV_KEYS[0].removeprefix("0x").startswith("ac0974bec39a17e3")  # the key anvil prints first


@pytest.mark.parametrize("index", range(10))
def test_each_dev_key_is_recognised_in_any_spelling(index):
    key = DEV_KEYS[index].removeprefix("0x")
    for spelling in (key, "0x" + key, "0x" + key.upper(), f"  0x{key}\n"):
        assert is_dev_key(spelling), spelling


@pytest.mark.parametrize("key", [RANDOM_KEY, "0x" + "11" * 32, "", "0x1234", "not a key", "0x" + "zz" * 32,
                                 "0x" + "00" * 32, "0x" + "ff" * 32, "ab" * 33])
def test_other_keys_and_junk_are_not_dev_keys(key):
    assert not is_dev_key(key)


@pytest.mark.parametrize("chain_id", [1, 11155111, 8453, 137])
def test_refused_on_a_real_chain_naming_the_variable_never_the_key(chain_id):
    key = DEV_KEYS[3]
    message = refuse_dev_keys(chain_id, {"MINTPIPE_CHAIN_RELAYER_KEY": RANDOM_KEY, "MINTPIPE_CHAIN_SIGNER_KEY": key})
    assert message == (f"MINTPIPE_CHAIN_SIGNER_KEY: this is one of anvil's well-known dev keys (anyone can spend "
                       f"from it); refused on chain {chain_id}: use a key of your own")
    bare = key.removeprefix("0x").lower()
    assert bare not in message.lower() and bare[:16] not in message.lower()
    assert RANDOM_KEY.removeprefix("0x") not in message


def test_the_first_offending_variable_is_named():
    keys = {"MINTPIPE_CHAIN_SIGNER_KEY": None, "A_KEY": DEV_KEYS[9], "B_KEY": DEV_KEYS[0]}
    assert refuse_dev_keys(1, keys).startswith("A_KEY: ")


@pytest.mark.parametrize("chain_id", sorted(LOCAL_CHAIN_IDS))
def test_allowed_on_a_local_dev_chain(chain_id):
    assert LOCAL_CHAIN_IDS == {31337, 1337}
    assert refuse_dev_keys(chain_id, {"MINTPIPE_CHAIN_SIGNER_KEY": DEV_KEYS[0], "R": "0x" + DEV_KEYS[1]}) is None


def test_own_keys_missing_keys_and_junk_pass_on_a_real_chain():
    assert refuse_dev_keys(1, {"S": RANDOM_KEY, "R": None, "E": "", "J": "0x1234"}) is None
    assert refuse_dev_keys(1, {}) is None
