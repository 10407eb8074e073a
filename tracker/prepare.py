"""Message preparation: tracked links, the open pixel and List-Unsubscribe, per recipient.

Used by HTTP submission now and by the campaign engine later. It works in two steps, because a
message body is stored once for all its recipients while tokens differ per recipient:

1. At submission (`SubmissionPreparer`, the HTTP API's hook): the request's options and the
   tenant's defaults decide what to do; when there is anything to do, a sealed (HMAC-signed)
   `X-Sendmill-Tracking` header carrying the decision is put first in the stored message.
   Untracked transactional mail gets no header and costs nothing more.
2. At delivery (`DeliveryPreparer`, the delivery engine's hook): a message whose stored body
   starts with that header is rewritten for each recipient row (`prepare_message`): links in
   the HTML part become `/c/TOKEN`, the pixel `/o/TOKEN` is added, marketing mail gets
   `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058), and the header is removed. DKIM
   signs after this, so the signature covers the per-recipient body and headers. A header a
   client forged does not verify and is only removed.

What is never rewritten: links that are not http(s) (`mailto:`, `tel:`, `sms:`, `#anchors`,
relative links), links to the tracker itself (the unsubscribe, preference and view links),
links longer than 2,048 bytes, and links marked `data-sendmill-notrack` (the attribute is
removed from what is sent). Placeholders `{{unsubscribe_url}}`, `{{preferences_url}}` and
`{{view_url}}` in the HTML or text part are replaced by the recipient's own links. Links in the
text part are left as written.

Options (JSON `"tracking"` object of `POST /api/v1/messages`): `opens`, `clicks` (booleans)
and `utm` (an object of `utm_*` parameters added to every tracked link). Tenant settings
(`companies.settings`, key `tracking`), all optional:
    enabled        false: never track this tenant's mail (List-Unsubscribe is still added)
    opens, clicks  defaults when a message does not say (else: on for marketing, off otherwise)
    per_recipient  false: aggregate-only tracking; links and pixel carry no recipient identity
    credentials    {"<credential id>": {"opens": .., "clicks": ..}}: per-credential defaults
"""

from __future__ import annotations

import email
import html
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from mta.compose import POLICY, ComposeError
from mta.credentials import Credential
from mta.queries import Queries
from mta.queue import ClaimedRecipient, StoredMessage, Submission
from tracker.template import Irregular, MessageTemplate
from tracker.tokens import MAX_URL, Token, TokenCodec, TokenError, TokenKind

log = logging.getLogger("sendmill.tracker")
SQL = Queries("tracker")

MARKER = "X-Sendmill-Tracking"
_MARKER_PREFIX = MARKER.lower().encode() + b":"
SETTINGS_TTL = 30.0
NOTRACK_ATTRIBUTE = "data-sendmill-notrack"
_OPTION_KEYS = frozenset({"opens", "clicks", "utm"})
# [^<>]: a tag ends before the next "<", so a failed match never rescans the rest of the
# document: linear, where [^>]* was quadratic on "<a " * n (issue 12, High 2).
_A_TAG = re.compile(r"<a\b[^<>]*>", re.IGNORECASE)
_HREF = re.compile(
    r"""((?<![\w-])href\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE
)
_NOTRACK = re.compile(rf"\s{NOTRACK_ATTRIBUTE}(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?", re.I)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Tracking:
    """What to do to one message, decided at submission (or by the campaign engine)."""

    company_id: int
    opens: bool = False
    clicks: bool = False
    marketing: bool = False  # List-Unsubscribe headers
    per_recipient: bool = True
    campaign_id: int = 0
    list_id: int = 0
    utm: dict[str, str] = field(default_factory=dict)

    @property
    def anything(self) -> bool:
        return self.opens or self.clicks or self.marketing


@dataclass(frozen=True, slots=True)
class Links:
    """Where the tracker answers, and where `mailto:` unsubscribe requests go."""

    base_url: str
    # (local part, bounce domain) of the `mailto:` in List-Unsubscribe:
    # <local>+<unsubscribe token in hex>@<domain>. The bounce listener takes mail for it and
    # the bounce processor reads the token with this codec (wired by the daemon) and
    # unsubscribes through mta.unsubscriptions. Hex because mail systems may change the case of
    # a local part. None: https only.
    mailto: tuple[str, str] | None = None

    def url(self, prefix: str, token: str) -> str:
        return f"{self.base_url}/{prefix}/{token}"


# --- link rewriting (pure; the campaign engine calls these too) ------------------------------


def with_utm(url: str, utm: Mapping[str, str]) -> str:
    """`url` with the campaign's UTM parameters, never overriding ones it already has."""
    if not utm:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    query += [(k, v) for k, v in utm.items() if k not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


def rewrite_links(body_html: str, tracked: Callable[[int, str], str | None], own: str) -> str:
    """Replace each trackable `<a href>` by `tracked(index, url)` (None leaves it alone).
    Links to `own` (the tracker), non-http(s) links and marked links are not counted."""
    index = 0

    def tag(match: re.Match[str]) -> str:
        nonlocal index
        text = match.group(0)
        if NOTRACK_ATTRIBUTE in text.lower():
            return _NOTRACK.sub("", text)
        href = _HREF.search(text)
        if href is None:
            return text
        raw = next((g for g in href.groups()[1:] if g is not None), "")
        url = html.unescape(raw).strip()
        if not url.lower().startswith(("http://", "https://")) or url.startswith(own):
            return text
        if len(url.encode()) > MAX_URL:
            return text
        replacement = tracked(index, url)
        index += 1
        if replacement is None:
            return text
        return (
            f'{text[: href.start()]}{href.group(1)}"{html.escape(replacement)}"{text[href.end() :]}'
        )

    return _A_TAG.sub(tag, body_html)


def add_pixel(body_html: str, pixel_url: str) -> str:
    """The open pixel just before `</body>` (or at the end when there is none)."""
    img = (
        f'<img src="{html.escape(pixel_url)}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px;overflow:hidden">'
    )
    ends = list(_BODY_END.finditer(body_html))
    if not ends:
        return body_html + img
    at = ends[-1].start()
    return body_html[:at] + img + body_html[at:]


# --- per-recipient preparation ---------------------------------------------------------------


class RecipientLinks:
    """The tokens and URLs of one recipient of one message."""

    def __init__(
        self, codec: TokenCodec, links: Links, tracking: Tracking, recipient_id: int, sent_at: int
    ) -> None:
        self.codec = codec
        self.links = links
        self.tracking = tracking
        self.sent_at = sent_at
        self.recipient_id = recipient_id
        tracked_id = recipient_id if tracking.per_recipient else 0
        self._base = Token(
            TokenKind.OPEN,
            tracked_id,
            tracking.company_id,
            tracking.campaign_id,
            tracking.list_id,
            sent_at,
        )
        # Unsubscribing and viewing always need the recipient, whatever the tracking privacy.
        self._personal = self._base._replace(recipient_id=recipient_id)

    def pixel(self) -> str:
        return self.links.url("o", self.codec.make(self._base))

    def click(self, index: int, url: str) -> str:
        target = with_utm(url, self.tracking.utm)
        if len(target.encode()) > MAX_URL:
            target = url
        token = self._base._replace(kind=TokenKind.CLICK, link_index=index, url=target)
        return self.links.url("c", self.codec.make(token))

    def unsubscribe_token(self) -> str:
        return self.codec.make(self._personal._replace(kind=TokenKind.UNSUBSCRIBE))

    def unsubscribe(self) -> str:
        return self.links.url("u", self.unsubscribe_token())

    def preferences(self) -> str:
        return self.links.url("p", self.unsubscribe_token())

    def view(self) -> str:
        return self.links.url("v", self.codec.make(self._personal._replace(kind=TokenKind.VIEW)))

    def placeholders(self, text: str) -> str:
        if "{{" not in text:
            return text
        return (
            text.replace("{{unsubscribe_url}}", self.unsubscribe())
            .replace("{{preferences_url}}", self.preferences())
            .replace("{{view_url}}", self.view())
        )

    def html(self, body_html: str, *, pixel: bool = True) -> str:
        body_html = self.placeholders(body_html)
        if self.tracking.clicks:
            body_html = rewrite_links(body_html, self.click, self.links.base_url)
        if self.tracking.opens and pixel:
            body_html = add_pixel(body_html, self.pixel())
        return body_html

    def list_unsubscribe(self) -> str:
        value = f"<{self.unsubscribe()}>"
        if self.links.mailto is not None:
            local_part, domain = self.links.mailto
            value += f", <mailto:{local_part}+{self.mailto_token()}@{domain}>"
        return value

    def mailto_token(self) -> str:
        """The unsubscribe token of the `mailto:` address, in hex: only what an unsubscribe
        needs (recipient, company, list), so that the local part stays within the 64 octets of
        RFC 5321 §4.5.3.1.1 (recipient ids up to 2^28, companies and lists up to 2^21)."""
        return self.codec.make_hex(
            Token(
                TokenKind.UNSUBSCRIBE,
                self.recipient_id,
                self.tracking.company_id,
                0,
                self.tracking.list_id,
            )
        )


def prepare_message(body: bytes, recipient: RecipientLinks) -> bytes:
    """The message as this recipient gets it: HTML parts rewritten, placeholders filled,
    List-Unsubscribe headers on marketing mail, the tracking header removed."""
    msg = email.message_from_bytes(body, policy=POLICY)
    del msg[MARKER]
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        subtype = part.get_content_type()
        if subtype not in ("text/html", "text/plain"):
            continue
        text = part.get_content()
        new = recipient.html(text) if subtype == "text/html" else recipient.placeholders(text)
        if new != text:
            part.set_content(new, subtype=subtype.partition("/")[2])
    if recipient.tracking.marketing:
        del msg["List-Unsubscribe"]
        del msg["List-Unsubscribe-Post"]
        msg["List-Unsubscribe"] = recipient.list_unsubscribe()
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058 §3.1
    return msg.as_bytes()


# --- the sealed decision stored with the message ---------------------------------------------


def seal_tracking(codec: TokenCodec, tracking: Tracking) -> bytes:
    """The header line that carries `tracking` inside the stored message."""
    data = json.dumps(asdict(tracking), separators=(",", ":"), sort_keys=True).encode()
    return f"{MARKER}: {codec.seal(data)}\r\n".encode()


def unseal_tracking(codec: TokenCodec, body: bytes, company_id: int) -> Tracking | None:
    """The decision sealed in `body`'s first header, if it verifies and is this company's."""
    line = body[: body.find(b"\r\n")]
    try:
        data = json.loads(codec.unseal(line.partition(b":")[2].decode("ascii")))
        tracking = Tracking(**data)
    except (TokenError, UnicodeDecodeError, ValueError, TypeError):
        return None
    return tracking if tracking.company_id == company_id else None


def render(template: MessageTemplate, recipient: RecipientLinks) -> bytes:
    """`prepare_message` on a pre-split message: the same result without the email package."""

    def rewrite(subtype: str, text: str) -> str:
        return recipient.html(text) if subtype == "html" else recipient.placeholders(text)

    extra: list[tuple[str, str]] = []
    if recipient.tracking.marketing:
        if template.header_names & {"list-unsubscribe", "list-unsubscribe-post"}:
            raise Irregular("the message has its own List-Unsubscribe")
        extra = [
            ("List-Unsubscribe", recipient.list_unsubscribe().replace(", <", ",\r\n <")),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),  # RFC 8058 §3.1
        ]
    return template.render(rewrite, extra)


class DeliveryPreparer:
    """The delivery engine's hook (`mta.delivery.MessagePreparer`): per-recipient bodies for
    messages that carry a tracking decision; everything else is left to the fast path.
    Each message is split once (`MessageTemplate`) and rendered per recipient."""

    TEMPLATES = 256  # messages whose split form is kept (a campaign is one message)

    def __init__(self, codec: TokenCodec, links: Links) -> None:
        self.codec = codec
        self.links = links
        self._templates: OrderedDict[int, MessageTemplate | None] = OrderedDict()

    def _template(self, message: StoredMessage) -> MessageTemplate | None:
        if message.id in self._templates:
            self._templates.move_to_end(message.id)
            return self._templates[message.id]
        body = message.body
        try:
            template: MessageTemplate | None = MessageTemplate.parse(body[body.find(b"\r\n") + 2 :])
        except (Irregular, ValueError, LookupError):
            template = None
        self._templates[message.id] = template
        if len(self._templates) > self.TEMPLATES:
            self._templates.popitem(last=False)
        return template

    def needs_preparation(self, message: StoredMessage) -> bool:
        return message.body[: len(_MARKER_PREFIX)].lower() == _MARKER_PREFIX

    def prepare(self, message: StoredMessage, recipient: ClaimedRecipient) -> bytes:
        body = message.body
        tracking = unseal_tracking(self.codec, body, message.company_id)
        try:
            if tracking is None:
                log.warning("message %s: tracking header does not verify; removed", message.id)
                return body[body.find(b"\r\n") + 2 :]
            links = RecipientLinks(self.codec, self.links, tracking, recipient.id, int(time.time()))
            template = self._template(message)
            if template is not None:
                try:
                    return render(template, links)
                except Irregular:
                    pass
            return prepare_message(body, links)
        except Exception:  # hostile or broken MIME: deliver it untracked rather than not at all
            log.exception("message %s: tracking preparation failed; sent untracked", message.id)
            return body[body.find(b"\r\n") + 2 :]


# --- submission ------------------------------------------------------------------------------


class SubmissionPreparer:
    """The HTTP API's hook: decide tracking for a submission and seal it into the message."""

    def __init__(self, db: asyncpg.Pool, codec: TokenCodec) -> None:
        self._db = db
        self.codec = codec
        self._settings: dict[int, tuple[float, dict[str, Any]]] = {}

    async def __call__(
        self, credential: Credential, options: Any, submission: Submission
    ) -> Submission:
        tracking = await self.decide(credential, options, submission)
        if not tracking.anything:
            return submission  # the fast path: stored and delivered as submitted
        return replace(submission, body=seal_tracking(self.codec, tracking) + submission.body)

    async def decide(
        self, credential: Credential, options: Any, submission: Submission
    ) -> Tracking:
        requested = _options(options)
        settings = await self._tenant_settings(credential.company_id)
        per_credential = settings.get("credentials", {})
        defaults = (
            per_credential.get(str(credential.id), {}) if isinstance(per_credential, dict) else {}
        )
        marketing = submission.category == "marketing"

        def wanted(name: str) -> bool:
            if settings.get("enabled") is False:
                return False
            for source in (requested, defaults, settings):
                if isinstance(source, dict) and isinstance(source.get(name), bool):
                    return source[name]
            return marketing

        return Tracking(
            company_id=credential.company_id,
            opens=wanted("opens"),
            clicks=wanted("clicks"),
            marketing=marketing,
            per_recipient=settings.get("per_recipient") is not False,
            campaign_id=submission.campaign_id or 0,
            list_id=submission.list_id or 0,
            utm=requested.get("utm", {}),
        )

    async def _tenant_settings(self, company_id: int) -> dict[str, Any]:
        hit = self._settings.get(company_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        row = await self._db.fetchrow(SQL["company-settings"], [company_id])
        settings = row["tracking"] if row is not None and isinstance(row["tracking"], dict) else {}
        self._settings[company_id] = (time.monotonic() + SETTINGS_TTL, settings)
        return settings


def _options(value: Any) -> dict[str, Any]:
    """Validate the JSON `tracking` object; ComposeError names the bad field."""
    if value is None:
        return {}
    if isinstance(value, bool):  # "tracking": false turns everything off, true turns it on
        return {"opens": value, "clicks": value}
    if not isinstance(value, dict):
        raise ComposeError("tracking", 'must be an object like {"opens": true, "clicks": true}')
    for key, item in value.items():
        if key not in _OPTION_KEYS:
            raise ComposeError(f"tracking.{key}", "unknown field")
        if key in ("opens", "clicks") and not isinstance(item, bool):
            raise ComposeError(f"tracking.{key}", "must be true or false")
    utm = value.get("utm", {})
    if not isinstance(utm, dict) or not all(
        isinstance(k, str) and k.startswith("utm_") and isinstance(v, str) for k, v in utm.items()
    ):
        raise ComposeError("tracking.utm", "must be an object of utm_* names to strings")
    return dict(value)


# --- campaign mail ---------------------------------------------------------------------------


class CampaignLinks:
    """The campaign renderer's links factory (control/campaign_delivery.py, wired by the
    daemon): one recipient's `RecipientLinks`, decided from the tenant's tracking settings the
    way `SubmissionPreparer.decide` decides for marketing mail (tracked unless they say not)."""

    def __init__(self, codec: TokenCodec, links: Links) -> None:
        self.codec = codec
        self.links = links

    def __call__(
        self,
        company_id: int,
        campaign_id: int,
        list_id: int,
        recipient_id: int,
        settings: Mapping[str, Any],
    ) -> RecipientLinks:
        def wanted(name: str) -> bool:
            if settings.get("enabled") is False:
                return False
            value = settings.get(name)
            return value if isinstance(value, bool) else True

        tracking = Tracking(
            company_id=company_id,
            opens=wanted("opens"),
            clicks=wanted("clicks"),
            marketing=True,
            per_recipient=settings.get("per_recipient") is not False,
            campaign_id=campaign_id,
            list_id=list_id,
        )
        return RecipientLinks(self.codec, self.links, tracking, recipient_id, int(time.time()))
