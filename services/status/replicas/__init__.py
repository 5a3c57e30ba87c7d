"""What lets several status replicas run side by side (issue 11); on SQLite one replica leads alone.

- start (was status.replicas): start_replicas, the leadership, the change feed and the shared per-IP limits in
  one call from status.__main__
- leader: which replica runs the duties only one may run at a time (the sweepers), by a PostgreSQL advisory lock
- feed: the change feed between replicas (LISTEN/NOTIFY), so every replica's watchers see every change
"""
