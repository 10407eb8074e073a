"""Prometheus metrics of the control API. Labels are bounded: the endpoint's path template
(`/api/email-campaigns/{id}/`, never an id), method, status, and small fixed vocabularies.

Control API processes write through prometheus-client's multiprocess mode when the daemon set
PROMETHEUS_MULTIPROC_DIR, so the daemon's one /metrics shows them all.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "sendmill_control_requests_total",
    "Control API requests by endpoint (path template), method and status",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "sendmill_control_request_seconds",
    "Time to answer a control API request, by the endpoint's resource group",
    ["tag"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOGINS = Counter(
    "sendmill_control_logins_total",
    "Login attempts by result (success, failure, throttled, totp_required)",
    ["result"],
)
PRINCIPAL_CACHE = Counter(
    "sendmill_control_principal_cache_total",
    "Credential checks answered from the principal cache (hit) or the database (miss)",
    ["result"],
)
CAMPAIGNS_ROLLED_UP = Counter(
    "sendmill_control_campaign_updates_total",
    "Campaigns whose performance counters changed in a rollup (one performance_update each)",
)
CAMPAIGN_RENDERS = Counter(
    "sendmill_campaign_renders_total",
    "Campaign messages rendered per recipient at delivery, by outcome (ok, failed)",
    ["outcome"],
)
CAMPAIGN_MISSING_VARIABLES = Counter(
    "sendmill_campaign_missing_variables_total",
    "Template variables a recipient's contact lacked (rendered empty), summed over renders",
)
CAMPAIGN_ENQUEUED = Counter(
    "sendmill_campaign_enqueued_total",
    "Campaign recipients written to the mail queue",
)
