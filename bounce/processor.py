"""The bounce processor: turns the messages the bounce listener stored into events and
suppressions, and does the same for the SMTP replies the delivery engine gets.

Inbound: batches of unprocessed `inbound_messages` are locked with SKIP LOCKED (several daemons
may run it), parsed, tied to their recipient rows, recorded and the tenant's policy applied,
all in the batch's transaction. The row is the one the VERP token named; when the token is
missing or forged, a VERP address quoted in the report, then the original Message-ID with the
failed address, find it when they can (listmonk#946).

Synchronous: `observe_outcomes` is the delivery engine's outcome observer: bounced and
deferred replies classified by the same classifier, recorded in one statement per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr

import asyncpg

from bounce import events, metrics, policy
from bounce.classify import Classifier, default_classifier
from bounce.events import BounceEvent, EventKind
from bounce.parse import parse_message
from bounce.reasons import REPUTATION_REASONS, Reason, Report, ReportKind
from mta.queries import Queries
from mta.queue import Outcome, RecipientState
from mta.verp import Verp, VerpError

log = logging.getLogger("sendmill.bounce")
SQL = Queries("bounce")


@dataclass(frozen=True, slots=True)
class MailtoRequest:
    """Who a `mailto:` unsubscribe address stands for."""

    recipient_id: int  # 0 when the address names no recipient row
    company_id: int  # 0: the recipient row's company
    list_id: int = 0  # 0: every list of the company


# Reads the token of unsubscribe+TOKEN@<bounce domain>; None when it does not verify. The
# daemon passes the tracker's (which makes the List-Unsubscribe mailto:); without one, the
# token is a VERP token under `unsubscribe_verp`.
MailtoDecoder = Callable[[str], MailtoRequest | None]


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    company_id: int
    address: str
    campaign_id: int | None


class BounceProcessor:
    """Processes inbound bounce-domain mail in the background, and delivery outcomes inline."""

    def __init__(
        self,
        db: asyncpg.Pool,
        verp: Verp,
        unsubscribe_verp: Verp,
        complaint_local_parts: Sequence[str] = ("fbl",),
        classifier: Classifier | None = None,
        batch_size: int = 50,
        poll_interval: float = 1.0,
        mailto_decoder: MailtoDecoder | None = None,
    ) -> None:
        self._db = db
        self._verp = verp
        self._unsubscribe = unsubscribe_verp
        self._mailto_decoder = mailto_decoder
        # Told the recipient domains whose DSNs say they refused our reputation: the daemon
        # slows down the delivery engines it runs in this process (set after they start).
        self.on_reputation: Callable[[str], None] | None = None
        self._complaint_parts = frozenset(p.lower() for p in complaint_local_parts)
        self._classifier = classifier or default_classifier()
        self._batch = batch_size
        self._poll = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # A VERP address of ours quoted anywhere in a report (Return-Path, X-Postfix-Sender...)
        self._verp_re = re.compile(
            rf"{re.escape(verp.local_part)}\+[a-z2-7]+-[a-z2-7]+@{re.escape(verp.domain)}".encode(),
            re.I,
        )

    # --- the bounce listener's address check ---------------------------------------------

    def accepts(self, address: str) -> bool:
        """Addresses of the bounce domain, other than VERP return paths, that take mail: the
        complaint (feedback loop) addresses and unsubscribe+TOKEN@ with a valid token."""
        local = address.strip("<>").rpartition("@")[0].lower()
        return local in self._complaint_parts or self.mailto_request(address) is not None

    def mailto_request(self, address: str) -> MailtoRequest | None:
        """The unsubscribe request an address of the bounce domain stands for, if any."""
        if not self._verp.is_bounce_domain(address):
            return None
        local = address.strip("<>").rpartition("@")[0]
        prefix, plus, token = local.partition("+")
        if not plus or prefix.lower() != self._unsubscribe.local_part or not token:
            return None
        if self._mailto_decoder is not None:
            # The tracker's List-Unsubscribe form first; our own VERP form is still accepted.
            request = self._mailto_decoder(token)
            if request is not None:
                return request
        try:
            return MailtoRequest(self._unsubscribe.decode(address), 0)
        except VerpError:
            return None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bounce-processor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                done = await self.process_once()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("bounce processing failed (%s); retrying", exc)
                done = 0
            except Exception:  # a bug must not end processing for the life of the daemon
                log.exception("bounce processing failed; retrying")
                done = 0
            if done < self._batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)

    # --- inbound ------------------------------------------------------------------------

    async def process_once(self) -> int:
        """Process one batch of inbound messages in one transaction; returns how many. A batch
        the database refuses is taken again one message at a time, and the message it chokes
        on is set aside as unreadable: one hostile message never stops the others."""
        try:
            return await self._process(self._batch)
        except asyncpg.DataError:
            log.warning("bounce batch refused by the database; one message at a time")
        done = 0
        for _ in range(self._batch):
            try:
                n = await self._process(1)
            except asyncpg.DataError as exc:
                n = await self._set_aside(str(exc))
            if not n:
                break
            done += n
        return done

    async def _set_aside(self, error: str) -> int:
        async with self._db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(SQL["claim-inbound"], 1)
            ids = [r["id"] for r in rows]
            await conn.execute(
                SQL["mark-inbound-processed"], ids, ["unreadable"] * len(ids), [0] * len(ids),
                [events.storable(error, 500)] * len(ids),
            )  # fmt: skip
        return len(rows)

    async def _process(self, limit: int) -> int:
        async with self._db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(SQL["claim-inbound"], limit)
            if not rows:
                return 0
            recorded: list[BounceEvent] = []
            ids, kinds, counts, errors = [], [], [], []
            for row in rows:
                kind, found, error = await self._one(conn, row)
                recorded.extend(found)
                ids.append(row["id"])
                kinds.append(kind)
                counts.append(len(found))
                errors.append(error)
                metrics.INBOUND_REPORTS.labels(kind).inc()
            await events.record(conn, recorded)
            await policy.apply(conn, recorded)
            if self.on_reputation is not None:
                for domain in {e.domain for e in recorded if _slows_site(e)}:
                    self.on_reputation(domain)
            errors = [events.storable(e, 500) for e in errors]
            await conn.execute(SQL["mark-inbound-processed"], ids, kinds, counts, errors)
        return len(rows)

    async def _one(
        self, conn: asyncpg.Connection, row: asyncpg.Record
    ) -> tuple[str, list[BounceEvent], str]:
        envelope_to: str = row["envelope_to"]
        body: bytes = row["body"]
        request = self.mailto_request(envelope_to)
        if request is not None:
            return await self._mailto(conn, row, request)
        report = await asyncio.to_thread(parse_message, body, self._classifier)
        if report.kind in (ReportKind.UNREADABLE, ReportKind.VACATION):
            return report.kind.value, [], report.error
        candidates = self._candidate_ids(row, report, body)
        rows = await self._rows(conn, candidates)
        if not rows and report.original.message_id:
            message_id = events.storable(report.original.message_id, 998)
            found_ids = [
                r["id"] for r in await conn.fetch(SQL["recipients-of-message"], message_id)
            ]
            rows = await self._rows(conn, found_ids)
        source = "arf" if report.kind is ReportKind.COMPLAINT else "dsn"
        found = []
        for failed in report.recipients:
            match = self._match(rows, failed.recipient, failed.original_recipient)
            if report.kind is ReportKind.COMPLAINT:
                kind = EventKind.COMPLAINED
            elif failed.action in ("delayed",):
                kind = EventKind.DEFERRED
            else:
                kind = EventKind.BOUNCED
            event = self._event(match, kind, failed.reason, failed.hard, source, row)
            if match is None:
                event.address = failed.recipient
            event.status = failed.status
            event.diagnostic = failed.diagnostic
            event.remote_mta = failed.remote_mta
            found.append(event)
        return report.kind.value, found, ""

    async def _mailto(
        self, conn: asyncpg.Connection, row: asyncpg.Record, request: MailtoRequest
    ) -> tuple[str, list[BounceEvent], str]:
        rows = await self._rows(conn, [request.recipient_id]) if request.recipient_id else []
        if rows:
            r = rows[0]
        else:  # no recipient row: the sender of the request is the person leaving
            headers = BytesHeaderParser(policy=compat32).parsebytes(row["body"])
            address = parseaddr(str(headers.get("From", "")))[1].lower()
            if not request.company_id or "@" not in address:
                return "unsubscribe", [], "no recipient row and no sender to unsubscribe"
            r = _Row(0, request.company_id, address, None)
        event = self._event(r, EventKind.UNSUBSCRIBED, Reason.FEEDBACK, None, "mailto", row)
        event.recipient_id = r.id or None
        event.list_id = request.list_id
        event.diagnostic = "mailto: unsubscribe request"
        return "unsubscribe", [event], ""

    def _candidate_ids(self, row: asyncpg.Record, report: Report, body: bytes) -> list[int]:
        ids = [row["recipient_id"]] if row["recipient_id"] else []
        quoted = [report.original.return_path.encode(), *self._verp_re.findall(body[:200_000])]
        for address in quoted:
            with contextlib.suppress(VerpError, UnicodeDecodeError):
                rid = self._verp.decode(address.decode())
                if rid not in ids:
                    ids.append(rid)
        return ids

    @staticmethod
    async def _rows(conn: asyncpg.Connection, ids: list[int]) -> list[_Row]:
        if not ids:
            return []
        found = {
            r["id"]: _Row(r["id"], r["company_id"], r["address"], r["campaign_id"])
            for r in await conn.fetch(SQL["recipient-rows"], ids)
        }
        return [found[i] for i in ids if i in found]

    @staticmethod
    def _match(rows: list[_Row], recipient: str, original: str) -> _Row | None:
        for r in rows:
            if r.address in (recipient, original):
                return r
        # The VERP token named one row: the report is about it even when the failed address
        # differs (a forward, an alias expansion, a redacted complaint).
        return rows[0] if len(rows) == 1 else None

    @staticmethod
    def _event(
        r: _Row | None,
        kind: EventKind,
        reason: Reason,
        hard: bool | None,
        source: str,
        inbound: asyncpg.Record | None = None,
    ) -> BounceEvent:
        return BounceEvent(
            kind=kind,
            reason=reason,
            hard=hard,
            address=r.address if r else "",
            source=source,
            company_id=r.company_id if r else None,
            recipient_id=r.id if r else None,
            campaign_id=r.campaign_id if r else None,
            inbound_id=inbound["id"] if inbound is not None else None,
        )

    # --- synchronous replies (the delivery engine's outcome observer) --------------------

    async def observe_outcomes(self, outcomes: Sequence[Outcome]) -> set[str]:
        """Record bounced and deferred delivery outcomes and apply the policy: called by the
        delivery engine after each batch of outcomes is written, off its hot path. Returns the
        recipient domains that refused us for reputation or policy with a 5xx (4xx replies
        already slow a site down): the engine slows their sites down too."""
        failed = [
            o
            for o in outcomes
            if o.counts_as_attempt
            and o.state in (RecipientState.BOUNCED, RecipientState.DEFERRED, RecipientState.EXPIRED)
        ]
        if not failed:
            return set()
        async with self._db.acquire() as conn, conn.transaction():
            rows = {r.id: r for r in await self._rows(conn, [o.recipient_id for o in failed])}
            recorded = []
            for o in failed:
                c = _classify_reply(self._classifier, o.code or 0, o.reply)
                deferred = o.state is RecipientState.DEFERRED
                kind = EventKind.DEFERRED if deferred else EventKind.BOUNCED
                if o.state is RecipientState.EXPIRED:
                    reason, hard = Reason.EXPIRED, False
                else:
                    reason, hard = c.reason, c.hard
                event = self._event(rows.get(o.recipient_id), kind, reason, hard, "smtp")
                event.status, event.diagnostic, event.remote_mta = c.status, o.reply, o.mx or ""
                recorded.append(event)
            await events.record(conn, recorded)
            await policy.apply(conn, recorded)
        return {
            e.domain
            for e, o in zip(recorded, failed, strict=True)
            if e.reason in REPUTATION_REASONS and (o.code or 0) >= 500 and e.domain
        }


def _slows_site(e: BounceEvent) -> bool:
    return e.kind is EventKind.BOUNCED and e.reason in REPUTATION_REASONS and bool(e.domain)


@functools.lru_cache(maxsize=4096)
def _classify_reply(classifier: Classifier, code: int, reply: str):
    """Replies repeat (one site, one text): classify each distinct one once."""
    return classifier.classify_reply(code, reply)
