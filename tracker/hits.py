"""What the pixel, the redirect and the pages share: reading the request, classifying it
(machine rules), recording the event, and counting requests for Prometheus."""

from __future__ import annotations

import time

from tracker import metrics
from tracker.events import Event, EventWriter
from tracker.machine import MachineRules
from tracker.machine import Request as MachineRequest
from tracker.tokens import Token, TokenCodec

Headers = list[tuple[bytes, bytes]]
_INTERESTING = frozenset({b"user-agent", b"purpose", b"sec-purpose", b"x-moz", b"x-forwarded-for"})

_TEXTS: dict[bytes, str] = {}
_TEXTS_MAX = 16384


def _text(value: bytes) -> str:
    """A header value as text, shared between requests: a campaign's traffic repeats a few
    hundred User-Agent strings, and buffered events then hold one copy each."""
    text = _TEXTS.get(value)
    if text is None:
        if len(_TEXTS) >= _TEXTS_MAX:
            _TEXTS.clear()
        text = _TEXTS[value] = value.decode("latin-1")
    return text


class Tally:
    """Request and event counts kept as plain integers on the hot path and added to the
    Prometheus metrics a few times a second (a metric update in multiprocess mode costs a lock
    and an mmap write, several times the cost of counting)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        self.events: dict[tuple[str, str | None], int] = {}

    def request(self, endpoint: str, outcome: str) -> None:
        key = (endpoint, outcome)
        self.requests[key] = self.requests.get(key, 0) + 1

    def event(self, kind: str, reason: str | None) -> None:
        key = (kind, reason)
        self.events[key] = self.events.get(key, 0) + 1

    def publish(self) -> None:
        requests, self.requests = self.requests, {}
        events, self.events = self.events, {}
        for (endpoint, outcome), n in requests.items():
            metrics.REQUESTS.labels(endpoint, outcome).inc(n)
        for (kind, reason), n in events.items():
            metrics.EVENTS.labels(kind, "true" if reason else "false").inc(n)
            if reason:
                metrics.MACHINE_EVENTS.labels(kind, reason).inc(n)


class Hits:
    """What the pixel and redirect share: verification, classification, recording."""

    def __init__(
        self, codec: TokenCodec, writer: EventWriter, rules: MachineRules, trust_forwarded: bool
    ) -> None:
        self.codec = codec
        self.writer = writer
        self.rules = rules
        self.trust_forwarded = trust_forwarded
        self.tally = Tally()
        writer.on_tick = self.tally.publish

    def request_info(
        self, headers: Headers, client: tuple[str, int] | None
    ) -> tuple[str, str | None, dict[str, str]]:
        found: dict[str, str] = {}
        for name, value in headers:
            if name in _INTERESTING:
                found[name.decode("latin-1")] = _text(value)
        ip = None
        if self.trust_forwarded and "x-forwarded-for" in found:
            ip = found["x-forwarded-for"].split(",")[0].strip()
        elif client:
            ip = client[0]
        return found.get("user-agent", ""), ip, found

    def record(
        self, kind: str, token: Token, headers: Headers, client: tuple[str, int] | None
    ) -> None:
        user_agent, ip, found = self.request_info(headers, client)
        now = time.time()
        since = now - token.sent_at if token.sent_at else None
        reason = self.rules.classify(MachineRequest(kind, user_agent, ip, found, since))
        click = kind == "click"
        self.writer.record(
            Event(
                kind,
                now,
                token.company_id,
                token.recipient_id,
                token.campaign_id,
                token.list_id,
                user_agent,
                ip,
                reason,
                token.link_index if click else None,
                token.url if click else None,
                token.sent_at,
            )
        )
        self.tally.event(kind, reason)
