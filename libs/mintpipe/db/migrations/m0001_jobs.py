"""The job store's tables (status.jobs.store): jobs, idempotency keys that outlive job cleanup, operators' cancels."""

ID = "0001_jobs"

SQL = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    wallet TEXT NOT NULL,
    scene TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    stage INTEGER NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    assets_json TEXT NOT NULL DEFAULT '{}',
    token_uri TEXT NOT NULL DEFAULT '',
    published INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_newest ON jobs (created_at DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_wallet_newest ON jobs (wallet, created_at DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs (updated_at);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_keys_age ON idempotency_keys (created_at);
CREATE TABLE IF NOT EXISTS cancellations (
    job_id TEXT PRIMARY KEY,
    cancelled_at REAL NOT NULL
);
"""
