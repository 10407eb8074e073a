"""Prometheus metrics of bounce processing. Labels are bounded: kinds, reasons, sources."""

from __future__ import annotations

from prometheus_client import Counter

BOUNCE_EVENTS = Counter(
    "sendmill_bounce_events_total",
    "Bounce events recorded, by kind (bounced, deferred, complained, unsubscribed), reason"
    " and source (dsn, smtp, arf, mailto, webhook)",
    ["kind", "reason", "source"],
)
SUPPRESSIONS = Counter(
    "sendmill_suppressions_added_total", "Addresses suppressed by the bounce policy", ["reason"]
)
REPUTATION_SIGNALS = Counter(
    "sendmill_reputation_signals_total",
    "Refusals that point at the sender's reputation or policy (never suppress), by reason",
    ["reason"],
)
INBOUND_REPORTS = Counter(
    "sendmill_inbound_reports_total",
    "Messages received for the bounce domain, by what they were (bounce, complaint,"
    " vacation, unsubscribe, unreadable)",
    ["kind"],
)
