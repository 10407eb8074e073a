"""Prometheus metrics of the tracker. Labels are bounded: endpoint, outcome, event kind and
machine reason (the reasons of machine_rules.toml), never tokens, addresses or URLs.

Tracker processes write through prometheus-client's multiprocess mode when the daemon set
PROMETHEUS_MULTIPROC_DIR, so one /metrics shows them all.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "sendmill_tracker_requests_total",
    "Tracker HTTP requests by endpoint (open, click, unsubscribe, ...) and outcome",
    ["endpoint", "outcome"],
)
EVENTS = Counter(
    "sendmill_tracker_events_total",
    "Tracking events recorded, by kind and whether a machine made them (see machine_share)",
    ["kind", "machine"],
)
MACHINE_EVENTS = Counter(
    "sendmill_tracker_machine_events_total",
    "Events classified as machine-made, by kind and rule reason",
    ["kind", "reason"],
)
EVENTS_WRITTEN = Counter("sendmill_tracker_events_written_total", "Events written to PostgreSQL")
EVENTS_DROPPED = Counter(
    "sendmill_tracker_events_dropped_total",
    "Events that could not be kept (buffer full during a database outage)",
)
EVENTS_PURGED = Counter(
    "sendmill_tracker_events_purged_total",
    "Events deleted because they were older than tracker.events_retention",
)
BUFFER_DEPTH = Gauge(
    "sendmill_tracker_buffer_depth",
    "Events waiting in memory to be written",
    multiprocess_mode="livesum",
)
WRITE_SECONDS = Histogram(
    "sendmill_tracker_write_seconds",
    "Time to write one batch of events",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
WRITE_FAILURES = Counter(
    "sendmill_tracker_write_failures_total", "Batches that failed to write and were kept to retry"
)
