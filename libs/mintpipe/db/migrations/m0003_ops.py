"""Operators' history (status.jobs.history): stage changes, retries, dead letters, the admin audit."""

ID = "0003_ops"

SQL = """
CREATE TABLE IF NOT EXISTS stage_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    at REAL NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    replica TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    took REAL  -- seconds from queued to this stage: set on `pinned` rows (the overview's time to pinned)
);
CREATE INDEX IF NOT EXISTS stage_history_job ON stage_history (job_id, id);
-- Covering indexes for the overview (measured with 10,000 jobs: bench/admin_overview.py): the last hour's
-- pinned rows with their time to pinned without a join, and the replicas at work without a table scan.
CREATE INDEX IF NOT EXISTS stage_history_stage_at ON stage_history (stage, at, took);
CREATE INDEX IF NOT EXISTS stage_history_at ON stage_history (at, source, replica);
-- Jobs by stage, and the oldest job waiting in a stage, from an index instead of a scan of every job.
CREATE INDEX IF NOT EXISTS jobs_stage ON jobs (stage, updated_at);
CREATE TABLE IF NOT EXISTS dead_letter_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL,
    dead_lettered_by TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,
    replayed_at REAL
);
CREATE INDEX IF NOT EXISTS dead_letter_history_job ON dead_letter_history (job_id, id);
CREATE INDEX IF NOT EXISTS dead_letter_history_open ON dead_letter_history (queue, replayed_at, at);
CREATE TABLE IF NOT EXISTS retry_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    stage INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    retry_in_s INTEGER NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    replica TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS retry_history_job ON retry_history (job_id, id);
CREATE TABLE IF NOT EXISTS admin_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS admin_audit_at ON admin_audit (at);
"""
