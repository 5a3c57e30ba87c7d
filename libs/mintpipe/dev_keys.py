"""anvil's (and hardhat's) well-known dev accounts, refused as keys anywhere but a local dev chain.

Their private keys come from the public mnemonic "test test … junk" (m/44'/60'/0'/0/i, i = 0..9) and are printed
by every anvil at start: anything sent to them on a real chain is swept within seconds. Only the addresses are
held here (no mnemonic machinery at runtime); a key is recognised by the address it derives.
"""

from __future__ import annotations

from collections.abc import Mapping

from eth_account import Account

# The chains anvil (31337) and hardhat/ganache (1337) run as by default.
LOCAL_CHAIN_IDS = frozenset({31337, 1337})

DEV_ADDRESSES = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
    "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
)
_DEV_ADDRESSES = frozenset(DEV_ADDRESSES)


def is_dev_key(private_key_hex: str) -> bool:
    """Whether the key (hex, with or without 0x) is one of the well-known dev accounts'. A malformed key is not
    (whoever loads it reports that)."""
    try:
        return Account.from_key(private_key_hex.strip()).address in _DEV_ADDRESSES
    except ValueError:  # junk hex, a wrong length, zero or past the curve order (binascii.Error is one too)
        return False


def refuse_dev_keys(chain_id: int, keys: Mapping[str, str | None]) -> str | None:
    """The error for the first variable (in `keys`' order) holding a well-known dev key while `chain_id` is not a
    local dev chain; None when there is none. The message names the variable, never the key."""
    if chain_id in LOCAL_CHAIN_IDS:
        return None
    for variable, key in keys.items():
        if key and is_dev_key(key):
            return (f"{variable}: this is one of anvil's well-known dev keys (anyone can spend from it); "
                    f"refused on chain {chain_id}: use a key of your own")
    return None
