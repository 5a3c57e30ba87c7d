"""Wallet addresses: accepted as 0x + 40 hex digits; mixed case must be a valid EIP-55 checksum."""

from __future__ import annotations

from web3 import Web3


def normalize_wallet(value: object) -> str:
    """The EIP-55 checksummed address, or ValueError saying what is wrong with it."""
    if not isinstance(value, str) or not value:
        raise ValueError("required: a 0x-prefixed Ethereum address")
    if not Web3.is_address(value):
        raise ValueError("not an Ethereum address (0x followed by 40 hex digits)")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not Web3.is_checksum_address(value):
        raise ValueError("mixed-case address with a wrong EIP-55 checksum (a typo?)")
    return Web3.to_checksum_address(value)
