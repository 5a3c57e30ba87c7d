"""Streaming encoders: each takes frames one at a time and never holds the whole clip."""
