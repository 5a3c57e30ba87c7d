"""Where every table lives: one Database interface over SQLite and PostgreSQL (core, was mintpipe.db), SQLite's
group commit (group_commit), the schema's migrations (migrations), and what replicas share on PostgreSQL
beyond the pool: their own connections for locks and LISTEN (replica, was replica_db)."""
