"""Content checks run when a template or campaign is saved and again before it is sent.

Blueprint §6.2 (`clean_email_content`) and issue 3 §7. Every check returns records, never raises
on content: a `CheckResult` has a stable check id, a severity (an `error` blocks saving as
"ready" and sending; a `warning` is shown and allowed), a message a marketer understands and
details for the console (locations, offending elements, rule scores).

    report = await check_content(EmailContent(subject=..., html=...), spamd=client_or_None)
    report.ok                      # no errors
    report.errors, report.warnings # CheckResult records
    report.html, report.text       # the HTML to send (compiled from MJML when given) and the
                                   # text part (the author's, or generated from the HTML)
    report.to_dict()               # JSON-ready, for the API's 422 `details` or a 200 body

`check_content_sync()` is the same without spamd (built-in rules only), for code without an event
loop. The checks, by id (`CheckId`):

- `mjml_compile`: an MJML source that does not compile (error).
- `html_parse`: the HTML is parsed as mail clients parse it; each place that changes the document's
  structure (unclosed or misnested tags) is an error with line and column; cosmetic problems
  (missing doctype, `<br/>`) are warnings. At most 20 of each are listed.
- `unsubscribe_link`: the HTML must carry the `{{ unsubscribe_url }}` placeholder (syntax in
  `control/placeholders.py`) or an explicit unsubscribe link (error); a hand-written text part
  without one is a warning.
- `responsive_design`: a `<meta name="viewport" content="width=device-width…">` AND either media
  queries or a fluid layout (percent or max-width sizing and no fixed width over 480 px without a
  max-width) — MJML output satisfies it by construction (error).
- `spam_score`: spamd's score when a client is given and answers, else the built-in rules'
  (`control/spam_rules.toml`); above 5.0 is an error listing each rule with its explanation; a lower
  score with rules hit is a warning with the same list; spamd failing is a warning (and the
  built-in rules are used).
- `image_alt`: images without an `alt` attribute (error); with an empty alt on a visible image
  (warning). 1x1 spacers and pixels are exempt.
- `html_size`: HTML over 102 KB is clipped by Gmail (warning); the tracking links added at send
  time make it larger still. HTML over 1 MB is refused unparsed (error).
- `encoding`: a field holds characters no email can carry (lone UTF-16 surrogates) (error).
- `text_part`: no text part was written; one was generated from the HTML (warning, review it), or
  the HTML has no text to generate one from.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

from control import placeholders
from control.content_pool import ContentPool, default_pool
from control.html_document import HtmlDocument, parse_html
from control.spam_rules import SPAM_THRESHOLD, SpamHit, SpamInput, SpamRules, SpamVerdict
from control.spamd import SpamdClient, SpamdError
from control.text_part import html_to_text

__all__ = [
    "GMAIL_CLIP_BYTES",
    "MAX_HTML_BYTES",
    "CheckId",
    "CheckResult",
    "ContentReport",
    "EmailContent",
    "Severity",
    "check_content",
    "check_content_sync",
    "compile_mjml",
    "spamd_message",
]

#: Gmail hides everything after the first 102 KB of a message's HTML behind "View entire message".
GMAIL_CLIP_BYTES = 102 * 1024
#: HTML larger than this is refused unparsed: no mail client shows it whole, and parsing it
#: would cost the server seconds.
MAX_HTML_BYTES = 1024 * 1024
#: A fixed width above this (px) without a max-width does not fit a phone screen.
MAX_FIXED_WIDTH_PX = 480
_MAX_LISTED = 20

_UNSUBSCRIBE_WORDS = re.compile(
    r"unsubscribe|opt[\s-]?out|abmelden|abbestellen|d[ée]sabonner|d[ée]sinscri|darse de baja|"
    r"afmelden|uitschrijven|disiscriviti|cancella(?:re)? (?:l')?iscrizione|descadastr",
    re.IGNORECASE,
)
_WIDTH_FEATURES = ("(max-width", "(min-width", "(max-device-width", "(min-device-width")
_STYLE_WIDTH = re.compile(r"(?<![-\w])width\s*:\s*(\d+(?:\.\d+)?)\s*(px|%)?", re.IGNORECASE)
_STYLE_MAX_WIDTH = re.compile(r"max-width\s*:", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")
_PERCENT_WIDTH = re.compile(r"^\s*\d+(?:\.\d+)?\s*%\s*$")


class Severity(enum.StrEnum):
    ERROR = "error"  # blocks sending
    WARNING = "warning"  # shown, allowed


class CheckId(enum.StrEnum):
    MJML_COMPILE = "mjml_compile"
    HTML_PARSE = "html_parse"
    UNSUBSCRIBE_LINK = "unsubscribe_link"
    RESPONSIVE_DESIGN = "responsive_design"
    SPAM_SCORE = "spam_score"
    IMAGE_ALT = "image_alt"
    HTML_SIZE = "html_size"
    TEXT_PART = "text_part"
    ENCODING = "encoding"


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: CheckId
    severity: Severity
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": str(self.check),
            "severity": str(self.severity),
            "message": self.message,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class EmailContent:
    """What is checked. Give `html`, or `mjml` (then `html` is ignored and compiled from it)."""

    subject: str
    html: str | None = None
    text: str | None = None  # the author's text part; None or blank: generated
    mjml: str | None = None
    from_address: str = "sender@sendmill.invalid"  # only used to build the message for spamd


@dataclass(frozen=True, slots=True)
class ContentReport:
    results: tuple[CheckResult, ...]
    html: str  # the HTML that will be sent
    text: str  # the text part that will be sent
    text_generated: bool
    spam: SpamVerdict | None

    @property
    def errors(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        """True when nothing blocks sending."""
        return not self.errors

    def by_check(self, check: CheckId) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.check is check)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "results": [r.to_dict() for r in self.results],
            "spam_score": self.spam.score if self.spam else None,
            "spam_source": self.spam.source if self.spam else None,
            "text_generated": self.text_generated,
        }


# --- entry points --------------------------------------------------------------------------------


async def check_content(
    content: EmailContent,
    *,
    spamd: SpamdClient | None = None,
    rules: SpamRules | None = None,
    pool: ContentPool | None = None,
) -> ContentReport:
    """Run every check; spam scoring asks `spamd` when given, else (or if it fails) `rules`.
    Parsing, compiling and the built-in rules run in `pool`'s worker processes (the process's
    default pool when None), never on the event loop; ContentCheckTimeout past its time limit."""
    prepared, builtin = await (pool or default_pool()).run(_checked, content, rules)
    content = prepared.content
    spam_results: list[CheckResult] = []
    verdict: SpamVerdict | None = None
    if builtin is not None and spamd is not None:
        try:
            result = await spamd.report(
                spamd_message(content.subject, prepared.html, prepared.text, content.from_address)
            )
        except (SpamdError, ValueError) as exc:  # ValueError: a From address email refuses
            spam_results.append(
                CheckResult(
                    CheckId.SPAM_SCORE,
                    Severity.WARNING,
                    f"SpamAssassin could not score the message ({exc}); the built-in rules did",
                    {"spamd": f"{spamd.host}:{spamd.port}"},
                )
            )
        else:
            verdict = SpamVerdict(
                score=result.score,
                threshold=SPAM_THRESHOLD,
                hits=tuple(SpamHit(r.name, r.score, r.description) for r in result.rules),
                source="spamd",
            )
    return _report(prepared, verdict or builtin, spam_results)


def _checked(
    content: EmailContent, rules: SpamRules | None
) -> tuple[_Prepared, SpamVerdict | None]:
    """In a worker: every check but spamd's, and the built-in rules' verdict (None when the
    HTML was not parsed). The parsed document stays in the worker."""
    prepared = _prepare(content)
    builtin = _builtin_verdict(prepared, rules) if prepared.document is not None else None
    prepared.document = None
    return prepared, builtin


def check_content_sync(content: EmailContent, *, rules: SpamRules | None = None) -> ContentReport:
    """Every check, with the built-in spam rules (no spamd, no event loop needed)."""
    return _finish(_prepare(content), None, rules, [])


def compile_mjml(source: str) -> tuple[str | None, list[str]]:
    """Compile MJML to HTML with the `mjml` package: (html or None, error messages)."""
    from mjml import mjml_to_html  # imported here: only MJML templates pay for it

    if "<mjml" not in source.lower():
        return None, ["the MJML source has no <mjml> root element"]
    try:
        result = mjml_to_html(source)
    except KeyError as exc:
        # The mjml package raises KeyError for an element it does not know.
        return None, [f"unknown MJML element {exc.args[0]!r}" if exc.args else "unknown element"]
    except Exception as exc:  # the compiler raises anything on bad input: report it
        return None, [f"{type(exc).__name__}: {exc}"]
    errors = [str(e) for e in (result.errors or [])]
    return result.html, errors


def spamd_message(subject: str, html: str, text: str, from_address: str) -> bytes:
    """The message as spamd should see it: multipart/alternative with the headers a sent
    message has (Date, Message-ID), so missing-header rules do not distort the score."""
    message = EmailMessage(policy=SMTP)
    message["From"] = from_address
    message["To"] = "recipient@sendmill.invalid"
    message["Subject"] = " ".join(subject.split())  # one line, whatever the author typed
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<{uuid.uuid4().hex}@sendmill.invalid>"
    message.set_content(text or " ")
    message.add_alternative(html, subtype="html")
    for part in message.iter_parts():
        del part["MIME-Version"]  # the email package repeats it on parts; only the top has it
    return message.as_bytes()


# --- the checks ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Prepared:
    content: EmailContent  # with invalid characters replaced
    results: list[CheckResult]
    html: str
    text: str
    text_generated: bool
    document: HtmlDocument | None


def _prepare(content: EmailContent) -> _Prepared:
    """Compile MJML, parse the HTML, generate the text part: everything before spam scoring."""
    content, results = _clean(content)
    html = content.html or ""
    if content.mjml is not None:
        compiled, errors = compile_mjml(content.mjml)
        for error in errors[:_MAX_LISTED]:
            results.append(
                CheckResult(CheckId.MJML_COMPILE, Severity.ERROR, f"MJML does not compile: {error}")
            )
        if compiled is None:
            return _Prepared(content, results, "", content.text or "", False, None)
        html = compiled
    if not html.strip():
        results.append(
            CheckResult(CheckId.HTML_PARSE, Severity.ERROR, "the email has no HTML content")
        )
        return _Prepared(content, results, html, content.text or "", False, None)
    if len(html) > MAX_HTML_BYTES or len(html.encode("utf-8")) > MAX_HTML_BYTES:
        results.append(
            CheckResult(
                CheckId.HTML_SIZE,
                Severity.ERROR,
                f"the HTML is over {MAX_HTML_BYTES // 1024} KB: far past Gmail's 102 KB clipping "
                "limit, it is not checked nor sent",
                {"limit_bytes": MAX_HTML_BYTES},
            )
        )
        return _Prepared(content, results, html, content.text or "", False, None)

    document = parse_html(html)
    text = content.text or ""
    generated = not text.strip()
    if generated:
        text = html_to_text(document)
    results += _parse_results(document)
    results += _unsubscribe_results(document, None if generated else text)
    results += _responsive_results(document)
    results += _image_results(document)
    results += _size_results(html)
    if generated:
        results.append(_generated_text_result(text))
    return _Prepared(content, results, html, text, generated, document)


def _clean(content: EmailContent) -> tuple[EmailContent, list[CheckResult]]:
    """Replace lone surrogates (JSON can carry "\\ud800"; no mail can) and report each field."""
    results: list[CheckResult] = []
    cleaned: dict[str, str] = {}
    for name in ("subject", "html", "text", "mjml", "from_address"):
        value = getattr(content, name)
        if value is None or not (bad := _SURROGATE.search(value)):
            continue
        cleaned[name] = _SURROGATE.sub("\ufffd", value)
        results.append(
            CheckResult(
                CheckId.ENCODING,
                Severity.ERROR,
                f"the {name.replace('_', ' ')} contains characters that are not valid Unicode "
                f"(U+{ord(bad.group(0)):04X} at position {bad.start()}): fix the source",
                {"field": name, "position": bad.start()},
            )
        )
    return dataclasses.replace(content, **cleaned), results


def _finish(
    prepared: _Prepared,
    verdict: SpamVerdict | None,
    rules: SpamRules | None,
    spam_results: list[CheckResult],
) -> ContentReport:
    if prepared.document is not None and verdict is None:
        verdict = _builtin_verdict(prepared, rules)
    return _report(prepared, verdict, spam_results)


def _builtin_verdict(prepared: _Prepared, rules: SpamRules | None) -> SpamVerdict:
    content, document = prepared.content, prepared.document
    assert document is not None
    return (rules or _default_rules()).evaluate(
        SpamInput(
            subject=content.subject,
            # A generated text part repeats the HTML's text: count the author's only.
            body_text=document.visible_text
            + ("" if prepared.text_generated else "\n" + prepared.text),
            links=[(link.href, link.text) for link in document.links],
            image_count=sum(1 for i in document.images if not i.is_spacer),
            has_html=True,
            has_text_part=bool(prepared.text.strip()),
        )
    )


def _report(
    prepared: _Prepared, verdict: SpamVerdict | None, spam_results: list[CheckResult]
) -> ContentReport:
    if verdict is not None:
        spam_results.extend(_spam_results(verdict))
    return ContentReport(
        results=tuple(prepared.results + spam_results),
        html=prepared.html,
        text=prepared.text,
        text_generated=prepared.text_generated,
        spam=verdict,
    )


def _parse_results(document: HtmlDocument) -> list[CheckResult]:
    results: list[CheckResult] = []
    for structural, severity in ((True, Severity.ERROR), (False, Severity.WARNING)):
        problems = [p for p in document.problems if p.structural is structural]
        for p in problems[:_MAX_LISTED]:
            results.append(
                CheckResult(
                    CheckId.HTML_PARSE,
                    severity,
                    f"line {p.line}, column {p.column}: {p.message}",
                    {"line": p.line, "column": p.column, "code": p.code},
                )
            )
        if len(problems) > _MAX_LISTED:
            results.append(
                CheckResult(
                    CheckId.HTML_PARSE,
                    severity,
                    f"{len(problems) - _MAX_LISTED} more HTML problems of this kind not listed",
                    {"not_listed": len(problems) - _MAX_LISTED},
                )
            )
    return results


def _has_unsubscribe_placeholder(text: str) -> bool:
    wanted = placeholders.key(placeholders.UNSUBSCRIBE_URL)
    return any(placeholders.key(name) == wanted for name in placeholders.find(text))


def _unsubscribe_results(document: HtmlDocument, text_part: str | None) -> list[CheckResult]:
    results: list[CheckResult] = []
    found = _has_unsubscribe_placeholder(document.source) or any(
        link.href.strip()
        and not link.href.strip().startswith("#")
        and (_UNSUBSCRIBE_WORDS.search(link.text) or _UNSUBSCRIBE_WORDS.search(unquote(link.href)))
        for link in document.links
    )
    if not found:
        results.append(
            CheckResult(
                CheckId.UNSUBSCRIBE_LINK,
                Severity.ERROR,
                'the email has no unsubscribe link: add <a href="{{ unsubscribe_url }}">'
                "Unsubscribe</a> (required by CAN-SPAM, GDPR and the mailbox providers' bulk "
                "sender rules)",
                {"placeholder": "{{ " + placeholders.UNSUBSCRIBE_URL + " }}"},
            )
        )
    if text_part is not None and not (
        _has_unsubscribe_placeholder(text_part) or _UNSUBSCRIBE_WORDS.search(text_part)
    ):
        results.append(
            CheckResult(
                CheckId.UNSUBSCRIBE_LINK,
                Severity.WARNING,
                "the text part has no unsubscribe link: add {{ unsubscribe_url }} to it",
                {"part": "text"},
            )
        )
    return results


def _width_px(value: str | None) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*", value or "")
    return float(match.group(1)) if match else None


def _width_media_queries(css: str) -> int:
    """How many @media rules test a viewport width. String operations, linear in the
    stylesheet: the regular expression this replaces took 5 s on `"@media(" * 16000` (issue 12,
    High 2)."""
    count = 0
    for rule in css.lower().split("@media")[1:]:
        condition = "".join(rule.partition("{")[0].split())
        count += any(feature in condition for feature in _WIDTH_FEATURES)
    return count


def _responsive_results(document: HtmlDocument) -> list[CheckResult]:
    viewport = document.viewport
    has_viewport = viewport is not None and "device-width" in viewport.replace(" ", "").lower()
    media_queries = sum(_width_media_queries(css) for css in document.stylesheets)
    fluid_marks = 0
    fixed: list[dict[str, Any]] = []
    for element in document.elements():
        if element.tag not in ("table", "td", "th", "div", "img", "center", "section"):
            continue
        style = element.get("style", "")
        if _STYLE_MAX_WIDTH.search(style):
            fluid_marks += 1
            continue
        attr = element.get("width")
        style_width = _STYLE_WIDTH.search(style)
        if (attr and _PERCENT_WIDTH.match(attr)) or (style_width and style_width.group(2) == "%"):
            fluid_marks += 1
            continue
        width = _width_px(attr)
        if style_width and style_width.group(2) in (None, "px"):
            width = float(style_width.group(1))
        if width is not None and width > MAX_FIXED_WIDTH_PX:
            fixed.append({"element": element.tag, "width_px": width})
    fluid = fluid_marks > 0 and not fixed
    details = {
        "viewport": viewport,
        "media_queries": media_queries,
        "fluid_elements": fluid_marks,
        "fixed_width_elements": fixed[:_MAX_LISTED],
    }
    problems = []
    if not has_viewport:
        problems.append(
            'add <meta name="viewport" content="width=device-width, initial-scale=1"> to <head>'
        )
    if not media_queries and not fluid:
        if fixed:
            widest = max(f["width_px"] for f in fixed)
            problems.append(
                f"{len(fixed)} element(s) have a fixed width (up to {widest:g}px) wider than a "
                f'phone screen and there are no media queries: use width="100%" with '
                f'style="max-width:…px", or add @media (max-width: …) rules'
            )
        else:
            problems.append(
                "the layout uses neither media queries nor fluid widths (percentages or max-width)"
            )
    if not problems:
        return []
    return [
        CheckResult(
            CheckId.RESPONSIVE_DESIGN,
            Severity.ERROR,
            "the email is not responsive: " + "; ".join(problems),
            details,
        )
    ]


def _image_results(document: HtmlDocument) -> list[CheckResult]:
    images = [i for i in document.images if not i.is_spacer]
    missing = [i.src for i in images if i.alt is None]
    empty = [i.src for i in images if i.alt is not None and not i.alt.strip()]
    results = []
    if missing:
        results.append(
            CheckResult(
                CheckId.IMAGE_ALT,
                Severity.ERROR,
                f"{len(missing)} image(s) have no alt text, which readers with images off or "
                f"with a screen reader see instead: {', '.join(missing[:5])}",
                {"images": missing[:_MAX_LISTED]},
            )
        )
    if empty:
        results.append(
            CheckResult(
                CheckId.IMAGE_ALT,
                Severity.WARNING,
                f"{len(empty)} image(s) have an empty alt text: fine for decoration only, "
                f"describe images that carry content: {', '.join(empty[:5])}",
                {"images": empty[:_MAX_LISTED]},
            )
        )
    return results


def _size_results(html: str) -> list[CheckResult]:
    size = len(html.encode("utf-8"))
    if size <= GMAIL_CLIP_BYTES:
        return []
    return [
        CheckResult(
            CheckId.HTML_SIZE,
            Severity.WARNING,
            f"the HTML is {size / 1024:.1f} KB: Gmail clips messages over 102 KB behind "
            f'"View entire message" (hiding the unsubscribe link and the open pixel); '
            f"tracked links make it larger still",
            {"bytes": size, "limit_bytes": GMAIL_CLIP_BYTES},
        )
    ]


def _generated_text_result(text: str) -> CheckResult:
    if not text.strip():
        return CheckResult(
            CheckId.TEXT_PART,
            Severity.WARNING,
            "no text part was written and the HTML has no text to generate one from: the message "
            "will go out as HTML only",
            {"generated": True, "characters": 0},
        )
    return CheckResult(
        CheckId.TEXT_PART,
        Severity.WARNING,
        "no text part was written: one was generated from the HTML; review it",
        {"generated": True, "characters": len(text)},
    )


def _spam_results(verdict: SpamVerdict) -> list[CheckResult]:
    rules = [
        {"rule": h.rule, "score": h.score, "description": h.description, "evidence": h.evidence}
        for h in sorted(verdict.hits, key=lambda h: -h.score)
    ]
    details = {
        "score": verdict.score,
        "threshold": verdict.threshold,
        "source": verdict.source,
        "rules": rules,
    }
    listed = ", ".join(f"{r['rule']} {r['score']:+.1f}" for r in rules if r["score"])
    if verdict.score > SPAM_THRESHOLD:
        return [
            CheckResult(
                CheckId.SPAM_SCORE,
                Severity.ERROR,
                f"spam score {verdict.score:.1f} is above {SPAM_THRESHOLD:.1f} ({verdict.source} "
                f"rules: {listed}); see each rule's explanation",
                details,
            )
        ]
    if any(h.score > 0 for h in verdict.hits):
        return [
            CheckResult(
                CheckId.SPAM_SCORE,
                Severity.WARNING,
                f"spam score {verdict.score:.1f}, refused above {SPAM_THRESHOLD:.1f} "
                f"({verdict.source} rules: {listed})",
                details,
            )
        ]
    return []


_RULES: SpamRules | None = None


def _default_rules() -> SpamRules:
    global _RULES  # loaded once per process: the file is part of the package
    if _RULES is None:
        _RULES = SpamRules.load()
    return _RULES
