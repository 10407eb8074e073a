"""Reads one inbound message for the bounce domain into a `Report`, and never raises.

The order of questions: is it an ARF feedback report (a complaint)? A DSN (RFC 3464, however
wrapped)? An auto-reply? A bounce in prose? Each failed recipient is then classified by the
same `Classifier` the MTA uses for its own SMTP replies. A message nothing can be made of is
reported as UNREADABLE with reason `undefined`: the processor keeps it, it is never lost.
"""

from __future__ import annotations

import email
import functools
import html
import re
from collections.abc import Callable
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from bounce import arf, dsn, heuristics, ses
from bounce.classify import Classifier, default_classifier, normalize
from bounce.reasons import FailedRecipient, OriginalHeaders, Reason, Report, ReportKind

_MAILBOX_REASONS = frozenset(
    {Reason.MAILBOXFULL, Reason.USERUNKNOWN, Reason.SUSPEND, Reason.MESGTOOBIG, Reason.EXCEEDLIMIT}
)
_NOT_FAILED_ACTIONS = frozenset({"delivered", "relayed", "expanded"})
# [^<>]: a failed match stops at the next "<" instead of rescanning the rest of the markup,
# which made "<x" * n quadratic (issue 12, High 2).
_TAG_RE = re.compile(r"<[^<>]*>")
# Tags that end a line or a paragraph: kept as line breaks so prose keeps its paragraphs.
_BREAK_RE = re.compile(r"<(?:br|/p|/div|/tr|/li|/h[1-6]|/table|hr)\b[^<>]*>", re.I)
_UNRENDERED_RE = re.compile(r"<(style|script|head)\b", re.I)
_HEADER_IN_TEXT_RE = re.compile(
    r"^(message-id|return-path|to|subject)[ \t]*:[ \t]*(.+)$", re.I | re.M
)
_MAX_TEXT = 8_000  # characters of human-readable text looked at: the report is at the top


def parse_message(raw: bytes, classifier: Classifier | None = None) -> Report:
    """Parse one raw message (any line endings, any MIME damage)."""
    classifier = classifier or default_classifier()
    try:
        return _Parser(raw, classifier).report()
    except Exception as exc:  # hostile input must never stop the processor
        return unreadable(f"{type(exc).__name__}: {exc}")


def _drop_unrendered(markup: str) -> str:
    """The markup without <style>, <script> and <head> elements. Each opening tag is found once
    and its end searched from there on, so the work is linear; an element left open runs to the
    end, as in a browser. (A lazy `.*?</\\1>` pattern rescanned the rest for every unclosed
    opening tag: quadratic, issue 12 High 2.)"""
    lower = markup.lower()
    kept: list[str] = []
    position = 0
    for opening in _UNRENDERED_RE.finditer(markup):
        if opening.start() < position:
            continue  # inside an element already dropped
        kept.append(markup[position : opening.start()])
        end = lower.find(f"</{opening.group(1).lower()}", opening.end())
        if end < 0:
            return " ".join(kept) + " "
        close = lower.find(">", end)
        position = len(markup) if close < 0 else close + 1
        kept.append(" ")
    kept.append(markup[position:])
    return "".join(kept)


def html_text(markup: str) -> str:
    """The text of an HTML bounce (some providers send no text/plain part), line breaks kept."""
    markup = _drop_unrendered(markup)
    markup = _BREAK_RE.sub("\n\n", markup)
    return html.unescape(_TAG_RE.sub(" ", markup))


def unreadable(error: str) -> Report:
    return Report(
        ReportKind.UNREADABLE,
        [FailedRecipient("", Reason.UNDEFINED, None)],
        error=error[:500],
    )


def _header(message: Message, name: str) -> str:
    """A header's text, RFC 2047 encoded words decoded, whitespace folded; '' when absent."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        text = str(value)
        if "=?" in text:
            text = str(make_header(decode_header(text)))
        return dsn.fold(text)
    except Exception:  # an undecodable header: its raw text, or nothing
        return dsn.fold(value) if isinstance(value, str) else ""


class _Parser:
    """One message's parts sorted by role, then questions asked in order."""

    def __init__(self, raw: bytes, classifier: Classifier) -> None:
        self.classifier = classifier
        self.message = email.message_from_bytes(raw, policy=compat32)
        # Looking for JMRP's header in every part is dear; its name in the bytes is not.
        self.maybe_jmrp = b"xmroriginalrecipient" in raw.lower()
        self.maybe_ses = b"notificationType" in raw or b"eventType" in raw
        self.dsn_parts: list[Message] = []
        self.feedback_part: Message | None = None
        self.original: Message | None = None
        self.texts: list[str] = []
        self.html: list[str] = []
        self.nested: Message | None = None
        self.depth = 0
        self._folded: str | None = None  # the human text, folded and lower-cased, once
        self._sort(self.message)

    def _sort(self, part: Message) -> None:
        ctype = part.get_content_type()
        # message/* parts are "multipart" to compat32 too: ask about them first.
        if part.is_multipart() and ctype.startswith("multipart/"):
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    self._sort(sub)
            return
        if ctype == arf.FEEDBACK_TYPE:
            self.feedback_part = self.feedback_part or part
        elif dsn.is_dsn_part(part, ctype):
            self.dsn_parts.append(part)
        elif ctype in dsn.ORIGINAL_TYPES:
            if self.original is None:
                payload = part.get_payload()
                if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                    self.original = payload[0]
                    if payload[0].get_content_type() == "multipart/report" and self.depth < 2:
                        self.nested = payload[0]  # a report forwarded as an attachment
                elif isinstance(payload, str):
                    self.original = HeaderParser(policy=compat32).parsestr(payload)
        elif ctype in dsn.HEADER_TYPES:
            if self.original is None:
                text = dsn.part_text(part)
                self.original = HeaderParser(policy=compat32).parsestr(text.lstrip())
        elif ctype == "text/plain" and not dsn.is_attachment(part):
            self.texts.append(dsn.part_text(part))
        elif ctype == "text/html" and not dsn.is_attachment(part):
            self.html.append(html_text(dsn.part_text(part)))

    # --- the questions ------------------------------------------------------------------

    def report(self) -> Report:
        if not self.message.keys():
            return unreadable("no header section: not a mail message")
        if self.nested is not None and not self.dsn_parts and self.feedback_part is None:
            inner = _Parser(self.nested.as_bytes(), self.classifier)
            inner.depth = self.depth + 1
            nested = inner.report()
            if nested.kind is not ReportKind.UNREADABLE and nested.recipients:
                return nested
        original = self._original_headers()
        if self.feedback_part is not None:
            return self._complaint(original)
        jmrp = arf.jmrp_recipient(self.message) if self.maybe_jmrp else None
        if jmrp is not None:
            return Report(
                ReportKind.COMPLAINT,
                [FailedRecipient(jmrp, Reason.FEEDBACK, None, diagnostic="jmrp")],
                original,
                feedback_type="abuse",
            )
        if self.maybe_ses and not self.dsn_parts:
            notification = ses.mailed_notification(self._human_text())
            if notification is not None:
                return self._ses(notification, original)
        human = heuristics.cut_original(self._human_text())
        if self.dsn_parts:
            report = self._dsn(human, original)
            if report is not None:
                return report
        sender = _header(self.message, "From")
        subject = _header(self.message, "Subject")
        if not self.dsn_parts and heuristics.looks_like_auto_reply(
            {k.lower(): str(v) for k, v in self.message.items()}, sender, subject, human
        ):
            who = dsn.first_address(sender) or dsn.first_address(_header(self.message, "Reply-To"))
            reply = FailedRecipient(who, Reason.VACATION, None, diagnostic=dsn.fold(subject))
            return Report(ReportKind.VACATION, [reply], original)
        return self._prose(human, original, sender, subject)

    def _human_text(self) -> str:
        if not self.texts and not self.html and not self.message.is_multipart():
            self.texts.append(dsn.part_text(self.message))
        return "\n\n".join(self.texts or self.html)[:_MAX_TEXT]

    def _complaint(self, original: OriginalHeaders) -> Report:
        """One complaint per recipient the report names (Original-Rcpt-To, which may repeat),
        else the returned message's To: the complainer, or the mailbox it reached."""
        assert self.feedback_part is not None
        feedback = arf.parse_feedback(dsn.part_text(self.feedback_part))
        recipients = feedback.recipients or (dsn.first_address(original.to),)
        if not original.return_path and feedback.original_mail_from:
            original.return_path = feedback.original_mail_from
        complaints = [
            FailedRecipient(
                recipient,
                Reason.FEEDBACK,
                None,
                diagnostic=feedback.feedback_type,
                remote_mta=feedback.user_agent,
            )
            for recipient in recipients
        ]
        return Report(ReportKind.COMPLAINT, complaints, original, feedback.feedback_type)

    def _ses(self, notification: dict[str, object], original: OriginalHeaders) -> Report:
        """A mailed Amazon SES notification: its recipients, classified like a DSN's."""
        found = ses.recipients(notification)
        if found and found[0].message_id and not original.message_id:
            original.message_id = found[0].message_id.strip("<> ")
        if found and found[0].complaint:
            complaints = [
                FailedRecipient(r.address.lower(), Reason.FEEDBACK, None, diagnostic=r.diagnostic)
                for r in found
            ]
            return Report(ReportKind.COMPLAINT, complaints, original, found[0].diagnostic)
        out = []
        for r in found:
            c = self.classifier.classify(r.status, r.diagnostic, r.action)
            reason, hard = c.reason, c.hard
            if reason in (Reason.ONHOLD, Reason.UNDEFINED) and r.hint is not None:
                reason, hard = r.hint, self.classifier.is_hard(r.hint, c.status)
            out.append(
                FailedRecipient(
                    r.address.lower(),
                    reason,
                    hard,
                    status=c.status,
                    action=r.action or "failed",
                    diagnostic=r.diagnostic[:1000],
                    remote_mta=r.remote_mta,
                )
            )
        return Report(ReportKind.BOUNCE, out, original)

    def _dsn(self, human: str, original: OriginalHeaders) -> Report | None:
        found: list[dsn.DsnRecipient] = []
        for part in self.dsn_parts:
            per_message, recipients = dsn.parse_delivery_status(dsn.part_text(part))
            found.extend(recipients)
            sender = per_message.get("x-postfix-sender") or per_message.get("x-original-sender")
            if sender and not original.return_path:
                original.return_path = dsn.first_address(sender)
        failed = [
            r for r in found if r.action not in _NOT_FAILED_ACTIONS and not r.status.startswith("2")
        ]
        if not found:
            return None  # an empty delivery-status part: read the prose instead
        if not failed:
            return Report(ReportKind.BOUNCE, [], original)  # a success or relay notice
        found_in_text: dict[str, str] | None = None

        def in_text() -> dict[str, str]:  # the prose is read only when a field is missing
            nonlocal found_in_text
            if found_in_text is None:
                found = heuristics.recipients_in_text(human, self._exclusions(original))
                found_in_text = {t.recipient: t.diagnostic for t in found}
            return found_in_text

        out = []
        for r in failed:
            recipient = r.recipient or next(iter(in_text()), "") or dsn.first_address(original.to)
            if r.diagnostic:
                diagnostic = r.diagnostic
            else:
                diagnostic = dsn.fold(in_text().get(recipient, "")) or dsn.fold(human[:1500])

            def more(recipient: str = recipient) -> str:
                return in_text().get(recipient, "") or human[:1500]

            out.append(self._classified(recipient, r, diagnostic, more, human, len(failed) == 1))
        return Report(ReportKind.BOUNCE, out, original)

    def _command(self, recipient: str, diagnostic: str, human: str, alone: bool) -> str:
        """The SMTP command the recipient's failure answered: said in its diagnostic, else in
        the text near its address (Postfix's "in reply to RCPT TO command" follows it,
        Sendmail's ">>> RCPT To:" precedes it), else anywhere when it failed alone."""
        folded = normalize(diagnostic)
        command = self.classifier.command_of(folded, folded.rfind(recipient) if recipient else -1)
        if command:
            return command
        if self._folded is None:
            self._folded = normalize(human)
        text = self._folded
        # the last mention: in a session transcript it is in the refusal, after its command
        at = text.rfind(recipient) if recipient else -1
        if at >= 0:
            start = max(0, at - 400)
            return self.classifier.command_of(text[start : at + 800], at - start)
        return self.classifier.command_of(text[:2000]) if alone else ""

    def _classified(
        self,
        recipient: str,
        r: dsn.DsnRecipient,
        diagnostic: str,
        more: Callable[[], str],
        human: str,
        alone: bool,
    ) -> FailedRecipient:
        """Classify one recipient; `more` gives the text around it when its own says nothing.
        The remote host comes from the report or the diagnostic; the SMTP command from the
        diagnostic, else from the text near its address, and only when it matters."""
        context = {
            "command": functools.cache(
                functools.partial(self._command, recipient, diagnostic, human, alone)
            ),
            "remote_host": r.remote_mta or _remote_host(diagnostic),
            "domain": recipient.rpartition("@")[2],
        }
        c = self.classifier.classify(r.status, diagnostic, r.action, **context)
        if c.reason in (Reason.ONHOLD, Reason.UNDEFINED):
            extra = more()
            if extra:
                c = self.classifier.classify(r.status, f"{diagnostic} {extra}", r.action, **context)
        local_program = r.diagnostic_type == "x-unix" or "command output:" in diagnostic.lower()
        if local_program and c.reason not in _MAILBOX_REASONS:
            # a local delivery program failed (X-Unix, Postfix's pipe): unless it said why
            c = type(c)(Reason.MAILERERROR, False, c.status)
        return FailedRecipient(
            recipient,
            c.reason,
            c.hard,
            status=c.status,
            action=r.action or "failed",
            diagnostic=diagnostic[:1000],
            remote_mta=r.remote_mta,
            original_recipient=r.original_recipient,
        )

    def _prose(self, human: str, original: OriginalHeaders, sender: str, subject: str) -> Report:
        exclusions = self._exclusions(original)
        found = heuristics.recipients_in_text(human, exclusions)
        failed_header = _header(self.message, "X-Failed-Recipients")
        if failed_header:
            named = [a.strip().lower() for a in failed_header.split(",") if "@" in a]
            texts = {t.recipient: t.diagnostic for t in found}
            found = [heuristics.TextRecipient(a, texts.get(a, human)) for a in named]
        if not failed_header and not heuristics.looks_like_bounce(sender, subject, human):
            return unreadable("neither a delivery report, a complaint nor an auto-reply")
        if not found:
            address = dsn.first_address(original.to)
            found = [heuristics.TextRecipient(address, human)]
        delayed = _looks_delayed(subject, human)
        out = []
        for t in found:
            r = dsn.DsnRecipient(t.recipient, action="delayed" if delayed else "failed")
            diagnostic = dsn.fold(t.diagnostic)
            out.append(
                self._classified(t.recipient, r, diagnostic, _head(human), human, len(found) == 1)
            )
        return Report(ReportKind.BOUNCE, out, original)

    def _exclusions(self, original: OriginalHeaders) -> frozenset[str]:
        addresses = {
            dsn.first_address(_header(self.message, "To")),
            dsn.first_address(_header(self.message, "From")),
            dsn.first_address(original.return_path),
        }
        if self.original is not None:
            for name in ("From", "Sender", "Reply-To", "Return-Path", "Errors-To"):
                addresses.add(dsn.first_address(_header(self.original, name)))
        addresses.discard("")
        return frozenset(addresses)

    def _original_headers(self) -> OriginalHeaders:
        if self.original is not None:
            return OriginalHeaders(
                message_id=_header(self.original, "Message-ID").strip("<> "),
                return_path=dsn.first_address(_header(self.original, "Return-Path")),
                to=_header(self.original, "To"),
                subject=_header(self.original, "Subject"),
            )
        # No attached original: the quoted headers in the text, when there are any.
        fields: dict[str, str] = {}
        for text in self.texts:
            for m in _HEADER_IN_TEXT_RE.finditer(text):
                fields.setdefault(m[1].lower(), m[2].strip())
        return OriginalHeaders(
            message_id=fields.get("message-id", "").strip("<> "),
            return_path=dsn.first_address(fields.get("return-path", "")),
            to="",
            subject=fields.get("subject", ""),
        )


_DELAYED_RE = re.compile(
    r"delayed|delivery\s+attempts\s+will\s+continue|will\s+(?:be\s+)?retry|"
    r"still\s+trying|warning:\s*could\s+not\s+send|not\s+yet\s+been\s+delivered|"
    r"this\s+is\s+a\s+warning|will\s+continue\s+trying|no\s+action\s+is\s+required",
    re.I,
)


# "host mx.example.net[192.0.2.1] said:" (Postfix), "host mx.example.net [192.0.2.1]:" (Exim),
# "while talking to mx.example.net.:" (Sendmail): the MTA that refused. Linear: one run of
# host-name characters after a fixed phrase.
_REMOTE_HOST_RE = re.compile(
    r"(?:\bhost|while talking to)\s+([a-z0-9][a-z0-9.-]{0,252}[a-z])", re.I
)


def _head(text: str) -> Callable[[], str]:
    return lambda: text[:1500]


def _remote_host(text: str) -> str:
    m = _REMOTE_HOST_RE.search(text)
    return m[1].lower() if m and "." in m[1] else ""


def _looks_delayed(subject: str, text: str) -> bool:
    """A warning that delivery is still being tried (a soft, temporary state)."""
    return bool(_DELAYED_RE.search(subject) or _DELAYED_RE.search(text[:1500]))
