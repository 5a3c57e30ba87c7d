"""Prometheus metrics every service shares (one registry per process), and the metrics port of a replica.

The gateway, each renderer and each pinner serve this registry on a port of their own (`<PREFIX>_METRICS_PORT`;
0 picks a free one; the port is logged, and `mintpipe up` prints them all). The status service shows it on the
bridge's /metrics beside its own, so one scrape of the bridge covers the events consumer too.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY = CollectorRegistry()

# Every consumer (render, pin, events): what became of each message it took.
MESSAGES = Counter("mintpipe_messages_total",
                   "messages a consumer settled: acked (done), retried (parked in a retry tier), dead_lettered, "
                   "cancelled (an operator's cancel), handed_back (stopping or the broker went away)",
                   ["queue", "outcome"], registry=REGISTRY)
SUBMISSIONS = Counter("mintpipe_jobs_submitted_total", "SubmitJob calls at the gateway by outcome (gRPC status)",
                      ["outcome"], registry=REGISTRY)
RENDER_SECONDS = Histogram("mintpipe_render_seconds", "wall seconds a render took (frames + GIF + MP4 + PNG)",
                           buckets=(0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300), registry=REGISTRY)
# Per job: drawing the frames, and each encoder's own seconds (the three run side by side, so they add up to more
# than the render's wall time). The default job (512², 100 frames), twice here with a browser test running beside:
# wall 1.65/1.54 s; draw 0.51/0.69, gif 0.65/0.91, mp4 0.51/0.50, png 0.29/0.28. Buckets from 10 ms to a minute.
ENCODE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
DRAW_SECONDS = Histogram("mintpipe_render_draw_seconds", "seconds a render spent drawing its frames (all threads' "
                         "work on each frame, measured on the render loop)", buckets=ENCODE_BUCKETS, registry=REGISTRY)
ENCODE_SECONDS = Histogram("mintpipe_encode_seconds",
                           "seconds a render spent in each encoder: gif (palette fit and frame tasks, summed over "
                           "its threads), mp4 (the ffmpeg process's CPU), png (writing the preview)",
                           ["encoder"], buckets=ENCODE_BUCKETS, registry=REGISTRY)
RENDER_CPU_SECONDS = Counter("mintpipe_render_cpu_seconds_total",
                             "CPU seconds of renders: `replica` (drawing, GIF and PNG, in this process) and "
                             "`ffmpeg` (the MP4 encoder, a child process)", ["part"], registry=REGISTRY)
ASSET_BYTES = Counter("mintpipe_asset_bytes_total", "bytes of rendered assets by kind", ["kind"], registry=REGISTRY)


def stage_of(queue: str) -> str:
    """A queue's stage name without the deployment's prefix (`mintpipe.render` → `render`), for labels."""
    return queue.rsplit(".", 1)[-1] if not queue.endswith(".events") else "events"


def serve_metrics(host: str, port: int) -> int:
    """Serve REGISTRY over HTTP in a daemon thread; returns the port (the one picked when `port` is 0)."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server.server_address[1]
