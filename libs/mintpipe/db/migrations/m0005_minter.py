"""The minter's tables (minter.store): relayed mints with the nonce fence, mints the watcher saw on chain.

`minter_relays` replaces the status-era `relays` (left in place, unused): that table had no UNIQUE(sender, nonce),
and two replicas stored two relays with nonce 0. Here the nonce is taken in the transaction that records the
relay, and the unique index refuses a second relay with the same sender and nonce whatever else goes wrong.
Status's side: `relay_outcomes` (what became of a job's relay request, from the minter's events) and
`service_secrets` (the key claim tokens are derived with, made once and shared by every status replica).
"""

ID = "0005_minter"

SQL = """
CREATE TABLE IF NOT EXISTS minter_relays (
    job_id TEXT PRIMARY KEY,
    wallet TEXT NOT NULL,
    token_uri TEXT NOT NULL,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    raw_tx TEXT NOT NULL,
    max_fee INTEGER NOT NULL,
    gas INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'sent',
    error TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 1,
    requested_by TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    sent_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS minter_relays_nonce ON minter_relays (sender, nonce);
CREATE INDEX IF NOT EXISTS minter_relays_wallet ON minter_relays (wallet, created_at);
CREATE INDEX IF NOT EXISTS minter_relays_created ON minter_relays (created_at);
CREATE INDEX IF NOT EXISTS minter_relays_state ON minter_relays (state);
CREATE TABLE IF NOT EXISTS minter_mints (
    job_id TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    wallet TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'seen',
    seen_at REAL NOT NULL,
    confirmed_at REAL
);
CREATE INDEX IF NOT EXISTS minter_mints_state ON minter_mints (state, block);
CREATE TABLE IF NOT EXISTS minter_replicas (
    name TEXT PRIMARY KEY,
    watching INTEGER NOT NULL DEFAULT 0,
    sending INTEGER NOT NULL DEFAULT 0,
    relayer TEXT NOT NULL DEFAULT '',
    head INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_outcomes (
    job_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    tx_hash TEXT NOT NULL DEFAULT '',
    http_status INTEGER NOT NULL DEFAULT 0,
    code TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    field TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS service_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""
