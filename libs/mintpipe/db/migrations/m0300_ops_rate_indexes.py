"""The overview's rates of the retry tiers and dead-letter queues (status.ops.overview): the last minutes' rows
from an index instead of a scan of the whole history."""

ID = "0300_ops_rate_indexes"

SQL = """
CREATE INDEX IF NOT EXISTS retry_history_at ON retry_history (at);
CREATE INDEX IF NOT EXISTS dead_letter_history_at ON dead_letter_history (at);
CREATE INDEX IF NOT EXISTS dead_letter_history_replayed ON dead_letter_history (replayed_at);
"""
