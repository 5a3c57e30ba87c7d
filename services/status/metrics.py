"""The status service's own Prometheus metrics (served with the bridge's at /metrics).

One registry per process: events are applied by module-level functions (status.workers.consumer), and the bridge's
/metrics shows this registry beside its own. Queue depths and consumers of every queue are set from a passive
declare of each queue just before a scrape (status.ops.overview), so one scrape of the bridge shows the whole
pipeline.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

EVENTS_APPLIED = Counter("mintpipe_status_events_applied_total", "job events that changed a job", ["stage"],
                         registry=REGISTRY)
EVENTS_DROPPED = Counter("mintpipe_status_events_dropped_total",
                         "job events that changed nothing (duplicates, late, unknown job)", registry=REGISTRY)
RETRIES = Counter("mintpipe_status_retries_total", "transient failures announced by a stage", ["stage"],
                  registry=REGISTRY)
DEAD_LETTERS = Counter("mintpipe_dead_letters_total", "messages dead-lettered from a work queue", ["queue"],
                       registry=REGISTRY)
JOBS_FINISHED = Counter("mintpipe_jobs_finished_total", "jobs reaching an outcome", ["outcome"], registry=REGISTRY)
# Buckets span a sub-second local pin to a backed-off retry of many minutes.
_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 900, 3600)
STAGE_SECONDS = Histogram("mintpipe_stage_seconds",
                          "seconds between stage changes: queued_to_rendering, render (rendering to rendered), "
                          "pin (rendered to pinned), pinned_to_minted, queued_to_pinned",
                          ["span"], buckets=_BUCKETS, registry=REGISTRY)
SSE_CLIENTS = Gauge("mintpipe_sse_clients", "open Server-Sent Events streams", registry=REGISTRY)
QUEUE_DEPTH = Gauge("mintpipe_queue_depth", "ready messages in a queue (passive declare at scrape time)",
                    ["stage", "kind", "queue"], registry=REGISTRY)
QUEUE_CONSUMERS = Gauge("mintpipe_queue_consumers", "consumers of a queue (passive declare at scrape time)",
                        ["stage", "kind", "queue"], registry=REGISTRY)
PIN_BUDGET_LEFT = Gauge("mintpipe_pin_budget_left", "pins left this month (-1: no budget set)", registry=REGISTRY)
PINS_THIS_MONTH = Gauge("mintpipe_pins_this_month", "pins made this month (all backends)", registry=REGISTRY)
ADMIN_ACTIONS = Counter("mintpipe_admin_actions_total", "operator actions", ["action", "outcome"], registry=REGISTRY)

# Which span a stage change closes, from the previous stage's name to this one's.
SPANS = {("queued", "rendering"): "queued_to_rendering", ("rendering", "rendered"): "render",
         ("rendered", "pinned"): "pin", ("pinning", "pinned"): None, ("pinned", "minted"): "pinned_to_minted"}
