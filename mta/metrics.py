"""Prometheus metrics of the mail path. Label sets are bounded: results, states, reply classes
and listener names, never domains or addresses.

Delivery runs in several processes, so metrics use prometheus-client's multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (the daemon sets it to <state_dir>/metrics before forking).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

SMTP_SESSIONS_IN = Counter(
    "sendmill_smtp_sessions_in_total", "Inbound SMTP sessions accepted", ["listener"]
)
SMTP_MESSAGES_IN = Counter(
    "sendmill_smtp_messages_in_total",
    "Inbound SMTP transactions by result (accepted or the reply class refused)",
    ["listener", "result"],
)
SMTP_AUTH = Counter("sendmill_smtp_auth_total", "SMTP AUTH attempts", ["result"])
HTTP_SUBMISSIONS = Counter(
    "sendmill_http_submissions_total", "HTTP message submissions by result", ["result"]
)
RECIPIENTS_QUEUED = Counter(
    "sendmill_recipients_queued_total", "Recipients committed to the queue", ["source"]
)
SMTP_SESSIONS_OUT = Counter(
    "sendmill_smtp_sessions_out_total", "Outbound SMTP connections by result", ["result"]
)
DELIVERIES = Counter(
    "sendmill_deliveries_total",
    "Delivery attempts by outcome (delivered, deferred, bounced, expired, suppressed)",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "sendmill_attempt_duration_seconds",
    "Time of one delivery attempt (one message over an open connection)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
QUEUE_SECONDS = Histogram(
    "sendmill_time_in_queue_seconds",
    "Time from submission to a final outcome",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
THROTTLE_WAITS = Counter(
    "sendmill_throttle_waits_total", "Times delivery waited on a site limit", ["limit"]
)
SITES_SLOWED = Gauge(
    "sendmill_sites_slowed",
    "Destination sites currently slowed down by deferrals",
    multiprocess_mode="livesum",
)
DKIM_SIGNATURES = Counter("sendmill_dkim_signatures_total", "DKIM signatures made", ["algorithm"])
DKIM_FAILURES = Counter("sendmill_dkim_failures_total", "DKIM signing failures")
QUEUE_RECIPIENTS = Gauge(
    "sendmill_queue_recipients",
    "Recipients in the queue by state (sampled from the database)",
    ["state"],
    multiprocess_mode="mostrecent",
)


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics, aggregated over processes when in multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
