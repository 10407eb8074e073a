"""Bounces that are not RFC 3464, and auto-replies that are not bounces.

Many MTAs and providers (qmail, Exim's and Postfix's text part, old Exchange, Yahoo, Gmail's
old format, Domino, Courier, IMail, GroupWise...) say what failed only in prose. Rather than
one parser per vendor, this reads the human-readable part the way a person does: it cuts the
quoted original message off, finds the addresses the text reports on, and takes each one's
paragraph (and the paragraph around it when the address stands alone) as its diagnostic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ADDRESS_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,}"
)

# Where the quoted original message starts in the text of a bounce (the report is above it).
_ORIGINAL_MARKER_RE = re.compile(
    r"""^[\s>]*(?:
        -+\s*(?:original\s+message|the\s+original\s+message|message\s+text)[^\n]*
      | -+\s*this\s+is\s+a\s+copy\s+of\s+(?:the|your)\s+message[^\n]*
      | -+\s*below\s+this\s+line\s+is\s+a\s+copy\s+of\s+the\s+message[^\n]*
      | -+\s*(?:returned|unsent|undelivered)\s+(?:mail|message)\s+follows[^\n]*
      | -+\s*(?:original\s+message|message)\s+(?:headers\s+)?follows[^\n]*
      | (?:---\s*)?original\s+message\s+(?:follows|attached)[^\n]*
      | -+\s*mensaje\s+original[^\n]*
      | -+\s*forwarded\s+message[^\n]*
      | content-type:\s*message/rfc822[^\n]*
      | ---+\s*the\s+header\s+of\s+the\s+original\s+message[^\n]*
    )$""",
    re.I | re.M | re.X,
)

# Local parts that are never the failed recipient: they sign the bounce or invite contact.
_SERVICE_LOCAL_PARTS = frozenset(
    {
        "postmaster",
        "mailer-daemon",
        "mailerdaemon",
        "abuse",
        "hostmaster",
        "webmaster",
        "noc",
        "root",
        "daemon",
        "nobody",
        "no-reply",
        "noreply",
        "do-not-reply",
        "donotreply",
        "bounce",
        "bounces",
        "helpdesk",
        "support",
    }
)

# Lines quoting the original message's header fields: their addresses are senders or lists.
_QUOTED_HEADER_RE = re.compile(
    r"^\s*(?:from|sender|reply-to|cc|subject|date|sent|message-id|return-path|received|"
    r"x-[a-z-]+|errors-to|list-[a-z-]+|de|envoy[ée]|objet|betreff|von)\s*:",
    re.I,
)
_TO_HEADER_RE = re.compile(r"^\s*(?:your\s+message\s+)?(?:to|an|para|à|a)\s*:", re.I)

_BOUNCE_SENDER_RE = re.compile(
    r"mailer-?daemon|postmaster|mail\s*delivery|mail\s*administrator|mailadmin|"
    r"system\s*administrator|mail\s*system|mmdf|smtp\s*gateway|mta\b",
    re.I,
)
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered|delivery\s*(?:status|failure|failed|notification|problem)|"
    r"returned\s*mail|return(?:ed)?\s*to\s*sender|failure\s*notice|mail\s*delivery|"
    r"could\s*not\s*be\s*delivered|non[- ]?(?:delivery|remis)|nondeliverable|"
    r"not\s*delivered|delivery\s*has\s*failed|error\s*sending|mail\s*error|"
    r"warning:\s*could\s*not|rejected|bounce|unzustellbar|no\s*entregado|"
    r"unable\s*to\s*deliver|permanent\s*error|message\s*not\s*delivered|"
    r"nicht\s*zustellbar|non\s*recapitabile|notification\s*d'[ée]tat",
    re.I,
)
_BOUNCE_TEXT_RE = re.compile(
    r"could\s+not\s+be\s+delivered|unable\s+to\s+deliver|undeliverable|delivery\s+(?:to\s+the\s+"
    r"following\s+recipients?\s+)?(?:has\s+)?failed|permanent(?:ly)?\s+(?:fatal\s+)?(?:error|"
    r"fail)|did\s+not\s+reach|not\s+be\s+delivered|was\s+not\s+delivered|returned\s+to\s+you|"
    r"delivery\s+status\s+notification|mail\s+delivery\s+(?:failed|system)|failure\s+notice|"
    r"no\s+such\s+user|user\s+unknown|does\s+not\s+exist|remote\s+host\s+said|"
    r"delivery\s+has\s+been\s+delayed|has\s+been\s+delayed|retry\s+timeout|"
    r"smtp\s+error|\b55\d\b|\b5\.\d\.\d\b",
    re.I,
)

_VACATION_SUBJECT_RE = re.compile(
    r"out\s*of\s*(?:the\s*)?office|automatic\s*reply|auto(?:matic)?[\s-]*(?:reply|response|"
    r"responder|antwort|answer)|autoreply|autorespond|vacation|away\s+from|on\s+leave|"
    r"on\s+holiday|absence|abwesenheit|r[ée]ponse\s+automatique|risposta\s+automatica|"
    r"respuesta\s+autom[áa]tica|fuera\s+de\s+la\s+oficina|automatische\s+antwort|"
    r"afwezig|frånvaro|poza\s+biurem|automaattinen|i\s*am\s*away|thank\s*you\s*for\s*(?:your|"
    r"contacting)",
    re.I,
)
_VACATION_TEXT_RE = re.compile(
    r"i\s+am\s+(?:currently\s+)?(?:out\s+of\s+(?:the\s+)?office|away|on\s+(?:vacation|leave|"
    r"holiday))|i\s+will\s+be\s+(?:out|away|back)|i'?m\s+(?:currently\s+)?(?:out\s+of|away)|"
    r"limited\s+access\s+to\s+(?:my\s+)?e-?mail|will\s+(?:respond|reply)\s+(?:to\s+your|as\s+soon)|"
    r"thank\s+you\s+for\s+(?:your\s+(?:e-?mail|message)|contacting)|auto-?reply|"
    r"automatic(?:ally)?\s+(?:generated\s+)?(?:reply|response)|gracias\s+por\s+contactar",
    re.I,
)


@dataclass(slots=True)
class TextRecipient:
    recipient: str
    diagnostic: str


# Two header fields in a row at the start of lines: a quoted header section begins.
_HEADER_BLOCK_RE = re.compile(
    r"^(?:received|return-path|dkim-signature|message-id|mime-version|delivered-to|date|from|"
    r"to|subject|x-[a-z0-9-]+|content-type|reply-to|sender|authentication-results)[ \t]*:.*\n"
    r"(?:[ \t]+.*\n)*"
    r"(?:received|return-path|dkim-signature|message-id|mime-version|delivered-to|date|from|"
    r"to|subject|x-[a-z0-9-]+|content-type|reply-to|sender|authentication-results)[ \t]*:",
    re.I | re.M,
)
# Failure words near an address: it is a reported recipient, not a signature or a mention.
_CONTEXT_RE = re.compile(
    r"fail|unknown|no\s+such|not\s+(?:found|exist|listed|reach|deliver|accept|valid|known|"
    r"available)|invalid|reject|refus|denied|error|unable|undeliver|could\s*n[o']t|quota|full|"
    r"disabled|exceed|expired|delay|time[ds]?\s*out|unavailable|does\s*n[o']t|permanent|"
    r"temporar|(?<!\d)[45]\d\d(?!\d)|[45]\.\d{1,3}\.\d|problem|bounced?|returned|"
    r"following\s+(?:recipient|address)|unrouteable|suspend|inactive|blocked|deferred",
    re.I,
)
_PREFIX_RE = re.compile(r"^(?:smtp|rfc822|x400|sms)[=:]", re.I)


# The same, said in the middle of a line ("The first 50 lines of your original message follow:").
_ORIGINAL_PHRASE_RE = re.compile(
    r"(?:original|returned|undelivered|unsent)\s+message\s+(?:follows?|is\s+attached|below)|"
    r"(?:copy|header|headers|first\s+\d+\s+lines)\s+of\s+(?:the\s+|your\s+)?original\s+message|"
    r"original\s+message\s+header",
    re.I,
)


def cut_original(text: str) -> str:
    """The text above the quoted original message (the report itself)."""
    found = (_ORIGINAL_MARKER_RE.search(text), _HEADER_BLOCK_RE.search(text))
    ends = [m.start() for m in found if m is not None and m.start() > 0]
    end = min(ends) if ends else len(text)
    # The phrase regex is slow over a whole text: try it on the lines that have its key words.
    start = 0
    for line in text[:end].splitlines(keepends=True):
        low = line.lower()
        keyword = "original" in low or "message" in low
        if keyword and start > 0 and _ORIGINAL_PHRASE_RE.search(line):
            return text[:start]
        start += len(line)
    return text[:end]


def clean_address(address: str) -> str:
    """An address as found in prose, without quotes, dots or 'smtp=' style prefixes."""
    address = address.strip(".'\"`").lower()
    return _PREFIX_RE.sub("", address)


def looks_like_bounce(sender: str, subject: str, text: str) -> bool:
    """From a mail system, or titled or worded like a delivery failure."""
    return bool(
        _BOUNCE_SENDER_RE.search(sender)
        or _BOUNCE_SUBJECT_RE.search(subject)
        or _BOUNCE_TEXT_RE.search(text[:6000])
    )


def looks_like_auto_reply(headers: dict[str, str], sender: str, subject: str, text: str) -> bool:
    """An out-of-office or other auto-reply (RFC 3834): a person's robot, not a bounce."""
    if _BOUNCE_SENDER_RE.search(sender):  # mail systems do not go on holiday
        return False
    auto = headers.get("auto-submitted", "").lower()
    flagged = (
        auto.startswith("auto-replied")
        or "x-autoreply" in headers
        or "x-autorespond" in headers
        or headers.get("precedence", "").lower() == "auto_reply"
        or "x-vacationmessage" in headers
    )
    if _BOUNCE_SUBJECT_RE.search(subject) and not _VACATION_SUBJECT_RE.search(subject):
        return False
    if _VACATION_SUBJECT_RE.search(subject):
        return True
    return flagged or _VACATION_TEXT_RE.search(text[:1500]) is not None


def _paragraphs(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) line ranges of blank-line separated paragraphs."""
    spans = []
    start = None
    for i, line in enumerate(lines):
        if line.strip():
            if start is None:
                start = i
        elif start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(lines)))
    return spans


def _is_service_address(address: str) -> bool:
    return address.partition("@")[0].lower() in _SERVICE_LOCAL_PARTS


def _only_addresses(text: str) -> bool:
    rest = _ADDRESS_RE.sub("", text)
    return len(re.sub(r"[\s<>\"'():;,.\[\]]|rfc822|smtp", "", rest, flags=re.I)) < 3


def _following(
    lines: list[str], spans: list[tuple[int, int]], n: int, consumed: set[int], address: str
) -> str:
    """The paragraphs after an address standing alone, up to the next address: Domino's
    "because:" and Gmail's "Technical details of permanent failure:" put the reason there."""
    texts = []
    for m in range(n + 1, min(n + 4, len(spans))):
        text = "\n".join(lines[slice(*spans[m])])
        others = {clean_address(a) for a in _ADDRESS_RE.findall(text)} - {address}
        if others and (texts or _only_addresses(text)):
            break  # the next recipient's paragraph
        texts.append(text)
        consumed.add(m)
        if not text.rstrip().endswith(":") and len(text) > 60:
            break  # a sentence that says why: enough
    return "\n".join(texts)


def recipients_in_text(text: str, exclude: frozenset[str]) -> list[TextRecipient]:
    """The addresses a bounce's prose reports on, each with the text about it."""
    lines = text.splitlines()
    spans = _paragraphs(lines)
    found: dict[str, TextRecipient] = {}
    to_lines: dict[str, TextRecipient] = {}
    consumed: set[int] = set()  # paragraphs already read as another address's diagnostic
    for n, (start, end) in enumerate(spans):
        if n in consumed:
            continue
        block = "\n".join(lines[start:end])
        for i in range(start, end):
            line = lines[i]
            if _QUOTED_HEADER_RE.match(line):
                continue
            # One address per line: "a (expanded from b)", "a... b" name the first.
            for m in _ADDRESS_RE.finditer(line):
                address = clean_address(m.group(0))
                if address in exclude or _is_service_address(address) or "@" not in address:
                    continue
                if address not in found and address not in to_lines:
                    diagnostic = block
                    if _only_addresses(block):
                        # "failed permanently:\n\n   addr\n\n   Technical details..." style
                        before = "\n".join(lines[slice(*spans[n - 1])]) if n else ""
                        after = _following(lines, spans, n, consumed, address)
                        diagnostic = f"{before}\n{block}\n{after}"
                    target = to_lines if _TO_HEADER_RE.match(line) else found
                    target[address] = TextRecipient(address, diagnostic)
                break
    reported = list(found.values()) or list(to_lines.values())
    in_context = [r for r in reported if _CONTEXT_RE.search(r.diagnostic)]
    return in_context or reported
