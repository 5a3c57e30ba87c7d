"""Shared building blocks of the mintpipe services (never imports a service)."""
