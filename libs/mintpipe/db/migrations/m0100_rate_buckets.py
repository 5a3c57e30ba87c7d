"""Token buckets shared by every replica (mintpipe.limits.postgres): one row per (scope, key). PostgreSQL only:
on SQLite (one replica) the buckets live in memory (mintpipe.limits.memory)."""

ID = "0100_rate_buckets"

SQLITE = ""
POSTGRES = """
CREATE TABLE IF NOT EXISTS rate_buckets (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    granted BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key));
CREATE INDEX IF NOT EXISTS rate_buckets_updated ON rate_buckets (scope, updated_at);
"""
