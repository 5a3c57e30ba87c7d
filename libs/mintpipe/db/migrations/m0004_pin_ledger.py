"""The pin ledger's tables (mintpipe.pin_ledger): pins, the budget's reservations, the shared request window,
the backend's 429 blocks, pinned jobs' results and one-uploader-per-CID claims."""

ID = "0004_pin_ledger"

SQL = """
CREATE TABLE IF NOT EXISTS pins (
    backend TEXT NOT NULL, cid TEXT NOT NULL, size INTEGER NOT NULL, job_id TEXT NOT NULL,
    pinned_at REAL NOT NULL, month TEXT NOT NULL, PRIMARY KEY (backend, cid));
CREATE INDEX IF NOT EXISTS pins_month ON pins (backend, month);
CREATE TABLE IF NOT EXISTS pinned_settings (backend TEXT NOT NULL, settings_hash TEXT NOT NULL,
    PRIMARY KEY (backend, settings_hash));
CREATE TABLE IF NOT EXISTS reservations (job_id TEXT PRIMARY KEY, pins INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS request_window (backend TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS request_window_ts ON request_window (backend, ts);
CREATE TABLE IF NOT EXISTS request_blocks (backend TEXT PRIMARY KEY, blocked_until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS job_results (job_id TEXT PRIMARY KEY, token_uri TEXT NOT NULL, assets_json TEXT NOT NULL,
    pinned_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS last_rate_limited (backend TEXT PRIMARY KEY, at REAL NOT NULL, retry_after REAL NOT NULL);
CREATE TABLE IF NOT EXISTS upload_claims (backend TEXT NOT NULL, cid TEXT NOT NULL, owner TEXT NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (backend, cid));
"""
