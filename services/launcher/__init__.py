"""launcher: the `mintpipe` command; runs the whole system locally, one process per service."""
