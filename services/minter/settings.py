"""The minter's settings (MINTER_...; the chain's may also be given once as MINTPIPE_CHAIN_...).

The minter is the only process that reads the signer and relayer keys. Without an RPC URL it does not start:
a deployment without a chain runs no minter, and status then answers `no_chain`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from web3 import Web3

from mintpipe.config import ServiceSettings


class MinterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MINTER_")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50081, ge=0, le=65535, description="MinterService, health and reflection")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port (0: a free one, logged)")
    db_path: Path | None = Field(None, description="SQLite file; default <data_dir>/minter.sqlite3")

    chain_rpc_url: str = Field(..., min_length=1, description="the Ethereum JSON-RPC URL the minter reads and "
                               "sends through (kept private: never answered to anyone)")
    chain_public_rpc_url: str | None = Field(None, description="the RPC URL wallets may add (GET /v1/chain); "
                                             "unset: none is offered, never the private one")
    chain_contract: str = Field(..., description="address of the deployed MintpipeCollection")
    chain_signer_key: SecretStr = Field(..., description="private key that signs mint vouchers")
    chain_relayer_key: SecretStr | None = Field(None, description="private key that sends relayed mints (off unset)")
    chain_confirmations: int = Field(2, ge=0, le=1000, description="blocks on top of a mint before it is minted")
    chain_finality_depth: int = Field(64, ge=1, le=10_000, description="a mint is re-checked until the node's "
                                      "`finalized` block passes it, or (nodes without one) this many blocks")
    chain_voucher_seconds: int = Field(3600, ge=60, le=30 * 86400, description="a voucher's validity")
    chain_poll_seconds: float = Field(2.0, gt=0, le=300, description="the watcher's polling interval")
    chain_start_block: int = Field(0, ge=0, description="where the watcher starts when it has no cursor yet")
    chain_local_dev: bool = Field(False, description="the chain is a local dev node (anvil): allows anvil's "
                                  "well-known keys, which are refused on any other chain")
    relay_per_wallet_daily: int = Field(3, ge=0, description="relayed mints one wallet may get per day")
    relay_daily: int = Field(500, ge=0, description="relayed mints the service sends per day, all wallets")
    relay_daily_budget_eth: float = Field(0.5, ge=0, description="most the relayer may commit to gas in a day "
                                          "(gas limit x max fee of each relay)")
    relay_max_gas_price_gwei: float = Field(200, gt=0, description="relays wait while gas costs more than this")
    relay_low_balance_eth: float = Field(0.05, ge=0, description="health is degraded below this relayer balance")
    relay_stuck_seconds: float = Field(120, gt=0, description="a relay unmined this long is replaced, fee bumped")

    @field_validator("chain_contract")
    @classmethod
    def _contract_address(cls, value: str) -> str:
        if not Web3.is_address(value):
            raise ValueError("not an address (0x followed by 40 hex digits)")
        return Web3.to_checksum_address(value)

    @model_validator(mode="after")
    def _keys_differ(self) -> MinterSettings:
        relayer = self.chain_relayer_key
        if relayer is not None and relayer.get_secret_value() == self.chain_signer_key.get_secret_value():
            raise ValueError("MINTPIPE_CHAIN_RELAYER_KEY must differ from MINTPIPE_CHAIN_SIGNER_KEY (a relayer "
                             "key spends gas all day; a signer key should sign and nothing else)")
        return self

    @property
    def database(self) -> Path:
        return self.db_path or self.data_dir / "minter.sqlite3"
