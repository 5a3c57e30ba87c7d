"""The chain's tables (status.chain_store): mints seen on chain, the watcher's block cursor, relayed mints."""

ID = "0002_chain"

SQL = """
CREATE TABLE IF NOT EXISTS mints (
    job_id TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT 0,
    minted_at REAL,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS mints_block ON mints (block);
CREATE TABLE IF NOT EXISTS chain_cursor (
    name TEXT PRIMARY KEY,
    block INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS relays (
    job_id TEXT PRIMARY KEY,
    wallet TEXT NOT NULL,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    raw_tx TEXT NOT NULL,
    max_fee INTEGER NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS relays_wallet ON relays (wallet, created_at);
CREATE INDEX IF NOT EXISTS relays_created ON relays (created_at);
"""
