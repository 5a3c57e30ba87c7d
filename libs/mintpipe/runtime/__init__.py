"""What every service process runs on: logging (log), Prometheus metrics (metrics), start and drain
(lifecycle), and the data volume's free space (disk). Imports no other mintpipe room."""
