"""normalize_wallet gives what web3 gives, for every spelling, and refuses what web3 refuses."""

import pytest
from web3 import Web3

from mintpipe.core.wallets import normalize_wallet

pytestmark = pytest.mark.unit

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.mark.parametrize("spelling", [CHECKSUMMED, CHECKSUMMED.lower(), "0x" + CHECKSUMMED[2:].upper(),
                                      CHECKSUMMED[2:].lower(), "0X" + CHECKSUMMED[2:].lower(),
                                      "0x000000000000000000000000000000000000dEaD"])
def test_accepted_spellings_give_web3s_checksum(spelling):
    assert normalize_wallet(spelling) == Web3.to_checksum_address(spelling)


@pytest.mark.parametrize(("value", "message"), [
    ("", "required"), (None, "required"), (7, "required"),
    ("0x1234", "not an Ethereum address"), ("0x" + "g" * 40, "not an Ethereum address"),
    (CHECKSUMMED + "0", "not an Ethereum address"),
    (CHECKSUMMED[:-1] + "D", "wrong EIP-55 checksum"),  # one letter's case flipped: a typo
])
def test_refused_with_the_reason(value, message):
    with pytest.raises(ValueError, match=message):
        normalize_wallet(value)
