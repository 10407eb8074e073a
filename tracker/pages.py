"""The tracker's pages: unsubscribe, preferences and "view in browser".

    GET  /u/TOKEN        states what will happen; one button (this list), one for all lists
    POST /u/TOKEN        unsubscribes at once; `List-Unsubscribe=One-Click` (RFC 8058) gets a
                         plain 200 with no further step
    GET/POST /p/TOKEN    the company's lists by name, a checkbox each: which to stay on;
                         or leave them all
    GET  /v/TOKEN        the recipient's HTML part, links rewritten, no pixel

Pages are rare next to pixels and clicks: ordinary Starlette endpoints. They work without
JavaScript, on small screens (viewport, large buttons) and with keyboards and screen readers
(real buttons, labels, focus outline, `lang`). Unsubscribing goes through mta.unsubscriptions,
so it is idempotent and the next marketing send to the address is suppressed. Errors are
`PageError`s, turned into pages in one place (`page_error`).
"""

from __future__ import annotations

import email
import html
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import asyncpg
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from mta import unsubscriptions
from mta.compose import POLICY
from mta.queries import Queries
from tracker import metrics
from tracker.events import Event
from tracker.hits import Hits
from tracker.prepare import MARKER, Links, RecipientLinks, Tracking, unseal_tracking
from tracker.tokens import Token, TokenCodec, TokenError, TokenKind

SQL = Queries("tracker")
_MAX_FORM = 8192

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body{{font:1.05rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
background:#f4f4f5;color:#18181b}}
main{{max-width:32rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.5rem}}
h1{{font-size:1.4rem;margin-top:0}}
button{{display:block;width:100%;min-height:3rem;margin:.75rem 0;font:inherit;font-weight:600;
border-radius:.4rem;border:2px solid #1d4ed8;cursor:pointer}}
.primary{{background:#1d4ed8;color:#fff}} .secondary{{background:#fff;color:#1d4ed8}}
button:focus-visible{{outline:3px solid #f59e0b;outline-offset:2px}}
p.note{{color:#52525b;font-size:.95rem}}
fieldset{{border:0;margin:0;padding:0}} legend{{font-weight:600;margin-bottom:.25rem}}
label.choice{{display:flex;flex-wrap:wrap;align-items:center;gap:.25rem .6rem;
padding:.6rem 0;border-bottom:1px solid #e4e4e7;cursor:pointer}}
label.choice input{{width:1.4rem;height:1.4rem;margin:0}}
label.choice .note{{flex-basis:100%;padding-left:2rem;color:#52525b;font-size:.95rem}}
input:focus-visible{{outline:3px solid #f59e0b;outline-offset:2px}}
</style>
</head>
<body><main>
<h1>{title}</h1>
{content}
</main></body>
</html>
"""


def _page(title: str, content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), content=content),
        status_code=status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer",
        },
    )


def _button(name: str, value: str, label: str, css: str = "primary") -> str:
    return (
        f'<button type="submit" class="{css}" name="{name}" value="{value}">'
        f"{html.escape(label)}</button>"
    )


@dataclass(frozen=True, slots=True)
class ListChoice:
    """One list on the preference page."""

    list_id: int
    name: str
    description: str
    member: bool  # a subscribed membership (the list's mail is meant for the address)
    unsubscribed: bool  # an unsubscription from this very list stops it
    known: bool = True  # a list of the control API (else only a list_id in the token)

    def receiving(self, all_off: bool) -> bool:
        return self.member and not self.unsubscribed and not all_off


@dataclass(frozen=True, slots=True)
class Choices:
    lists: list[ListChoice]
    all_off: bool  # unsubscribed from every list of the company


def _preferences_form(address: str, choices: Choices, saved: str) -> str:
    parts = [f"<p>Choose the lists <strong>{html.escape(address)}</strong> receives.</p>"]
    if saved:
        parts.append(f'<p role="status"><strong>{html.escape(saved)}</strong></p>')
    if choices.all_off:
        parts.append(
            "<p>You are unsubscribed from all our lists. Tick the ones you want and save to "
            "receive them again.</p>"
        )
    boxes = []
    for c in choices.lists:
        checked = " checked" if c.receiving(choices.all_off) else ""
        note = f'<span class="note">{html.escape(c.description)}</span>' if c.description else ""
        boxes.append(
            f'<label class="choice"><input type="checkbox" name="list" value="{c.list_id}"'
            f"{checked}> <span>{html.escape(c.name)}</span>{note}</label>"
        )
    if boxes:
        parts.append(
            '<form method="post"><fieldset><legend>Lists</legend>'
            + "".join(boxes)
            + "</fieldset>"
            + _button("action", "save", "Save preferences")
            + "</form>"
        )
    if not choices.all_off:
        parts.append(
            '<form method="post">'
            + _button("action", "leave-all", "Unsubscribe from all lists", "secondary")
            + "</form>"
        )
    parts.append('<p class="note">You will still receive messages you need, such as receipts.</p>')
    return "".join(parts)


class PageError(Exception):
    def __init__(self, status: int, title: str, text: str) -> None:
        self.status, self.title, self.text = status, title, text


_INVALID = PageError(
    404, "Link not valid", "This link is not valid. Please use the link from the message."
)
_UNAVAILABLE = PageError(
    503, "Try again shortly", "We could not process this right now. Please try again in a minute."
)


_CROSS_SITE = PageError(
    403,
    "Open the link from the message",
    "Preferences can only be changed from this page. Please open the link from the message.",
)


def _same_site_only(request: Request) -> None:
    """A preferences form posted from another site is refused (issue 12.14): the link in the
    message is a capability, and a third-party page holding a forwarded one must not use it.
    Browsers say where a POST comes from (Sec-Fetch-Site, Origin); a client that says nothing
    is not a browser that a page could have driven."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise _CROSS_SITE
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise _CROSS_SITE


class Pages:
    """Unsubscribe, preferences and view in browser: rare, so plain Starlette."""

    def __init__(self, db: asyncpg.Pool, codec: TokenCodec, links: Links, hits: Hits) -> None:
        self.db = db
        self.codec = codec
        self.links = links
        self.hits = hits

    def _token(self, request: Request, kind: TokenKind) -> Token:
        try:
            token = self.codec.verify(request.path_params["token"], kind)
        except TokenError:
            raise _INVALID from None
        if token.recipient_id == 0:
            raise _INVALID
        return token

    async def _address(self, token: Token) -> str:
        try:
            address = await self.db.fetchval(
                SQL["recipient-address"], token.recipient_id, token.company_id
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _UNAVAILABLE from exc
        if address is None:
            raise _INVALID
        return address

    async def _fields(self, request: Request) -> dict[str, list[str]]:
        """The form's fields, each with all its values (checkboxes repeat a name)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                break
        text = body[:_MAX_FORM].decode("utf-8", "replace")
        if "multipart/form-data" in request.headers.get("content-type", ""):
            # RFC 8058 allows multipart: only the field names matter here
            return {"List-Unsubscribe": ["One-Click"]} if "One-Click" in text else {}
        return parse_qs(text)

    async def _form(self, request: Request) -> dict[str, str]:
        return {k: v[0] for k, v in (await self._fields(request)).items()}

    def _record_unsubscribe(self, request: Request, token: Token, list_id: int) -> str:
        """The unsubscribe event (off the request path, like opens); returns the user agent."""
        user_agent, ip, _ = self.hits.request_info(request.scope["headers"], request.client)
        self.hits.writer.record(
            Event(
                "unsubscribe",
                time.time(),
                token.company_id,
                token.recipient_id,
                token.campaign_id,
                list_id,
                user_agent,
                ip,
                sent_at=token.sent_at,
            )
        )
        self.hits.tally.event("unsubscribe", None)
        return user_agent

    # --- unsubscribe ----------------------------------------------------------------------

    async def unsubscribe_page(self, request: Request) -> Response:
        token = self._token(request, TokenKind.UNSUBSCRIBE)
        address = await self._address(token)
        this_list = "this mailing list" if token.list_id else "these emails"
        buttons = _button("scope", "list", f"Unsubscribe from {this_list}")
        if token.list_id:
            buttons += _button("scope", "all", "Unsubscribe from all lists", "secondary")
        content = (
            f"<p>Stop sending {this_list} to <strong>{html.escape(address)}</strong>?</p>"
            f'<form method="post">{buttons}</form>'
            f'<p class="note">You will still receive messages you need, such as receipts. '
            f'<a href="{html.escape(self.links.url("p", request.path_params["token"]))}">'
            "Manage your preferences</a>.</p>"
        )
        return _page("Unsubscribe", content)

    async def unsubscribe(self, request: Request) -> Response:
        token = self._token(request, TokenKind.UNSUBSCRIBE)
        form = await self._form(request)
        one_click = form.get("List-Unsubscribe") == "One-Click"
        scope = "all" if form.get("scope") == "all" else "list"
        list_id = token.list_id if scope == "list" else unsubscriptions.ALL_LISTS
        address = await self._address(token)
        user_agent, _, _ = self.hits.request_info(request.scope["headers"], request.client)
        try:
            await unsubscriptions.unsubscribe(
                self.db,
                token.company_id,
                address,
                list_id,
                source="one-click" if one_click else "page",
                evidence=f"recipient {token.recipient_id}; user agent {user_agent[:200]}",
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _UNAVAILABLE from exc
        self._record_unsubscribe(request, token, list_id)
        self.hits.tally.request("unsubscribe", "one-click" if one_click else "page")
        if one_click:  # RFC 8058 §3.2: the POST itself is the whole interaction
            return PlainTextResponse("Unsubscribed.\n", headers={"Cache-Control": "no-store"})
        what = "this list" if list_id else "all our lists"
        preferences = self.links.url("p", request.path_params["token"])
        return _page(
            "You are unsubscribed",
            f"<p><strong>{html.escape(address)}</strong> will receive no more emails from "
            f"{what}. It takes effect immediately.</p>"
            f'<p class="note"><a href="{html.escape(preferences)}">'
            "Changed your mind? Manage your preferences</a>.</p>",
        )

    # --- preferences ----------------------------------------------------------------------

    async def preferences(self, request: Request) -> Response:
        """The lists by name, a checkbox each; saving leaves the unticked ones and (re)joins
        the ticked ones. Another button unsubscribes from all lists."""
        token = self._token(request, TokenKind.UNSUBSCRIBE)
        address = await self._address(token)
        saved = ""
        try:
            choices = await self._choices(token, address)
            if request.method == "POST":
                _same_site_only(request)
                fields = await self._fields(request)
                action = (fields.get("action") or [""])[0]
                if action == "leave-all":
                    if await unsubscriptions.unsubscribe(
                        self.db, token.company_id, address, source="page"
                    ):
                        self._record_unsubscribe(request, token, unsubscriptions.ALL_LISTS)
                    saved = "You are unsubscribed from all our lists."
                elif action == "save":
                    await self._save(request, token, address, choices, fields.get("list", []))
                    saved = "Your preferences are saved."
                choices = await self._choices(token, address)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _UNAVAILABLE from exc
        return _page("Email preferences", _preferences_form(address, choices, saved))

    async def _choices(self, token: Token, address: str) -> Choices:
        rows = await self.db.fetch(
            SQL["list-preferences"], token.company_id, address, token.list_id
        )
        lists = [
            ListChoice(
                r["list_id"], r["list_name"], r["description"] or "", r["member"], r["unsubscribed"]
            )
            for r in rows
        ]
        unsubscribed = {
            u.list_id
            for u in await unsubscriptions.unsubscribed_lists(self.db, token.company_id, address)
        }
        if token.list_id and all(c.list_id != token.list_id for c in lists):
            # mail from a list the control API does not know (an HTTP submission's list_id):
            # offered under a generic name; the mail itself shows the address is on it
            lists.insert(
                0,
                ListChoice(
                    token.list_id,
                    "The list this message was sent to",
                    "",
                    True,
                    token.list_id in unsubscribed,
                    known=False,
                ),
            )
        return Choices(lists, unsubscriptions.ALL_LISTS in unsubscribed)

    async def _save(
        self,
        request: Request,
        token: Token,
        address: str,
        choices: Choices,
        ticked: list[str],
    ) -> None:
        """Leave the unticked lists, (re)join the ticked ones: all or nothing."""
        company = token.company_id
        wanted = {c.list_id for c in choices.lists if str(c.list_id) in ticked}
        stays_all_off = choices.all_off and not wanted
        left = []
        async with self.db.acquire() as conn, conn.transaction():
            if choices.all_off and wanted:
                # ticking a list after leaving them all: the all-lists record goes, and the
                # lists left unticked get a record of their own below
                await unsubscriptions.resubscribe(conn, company, address)
            for choice in choices.lists:
                if choice.list_id in wanted:
                    if choice.unsubscribed:
                        await unsubscriptions.resubscribe(conn, company, address, choice.list_id)
                    if choice.known and not choice.member:
                        await conn.fetchval(SQL["join-list"], company, address, choice.list_id)
                elif choice.member and not choice.unsubscribed and not stays_all_off:
                    await unsubscriptions.unsubscribe(
                        conn,
                        company,
                        address,
                        choice.list_id,
                        source="page",
                        evidence=f"recipient {token.recipient_id}; preference page",
                    )
                    left.append(choice.list_id)
        for list_id in left:
            self._record_unsubscribe(request, token, list_id)

    # --- view in browser ------------------------------------------------------------------

    async def view(self, request: Request) -> Response:
        token = self._token(request, TokenKind.VIEW)
        try:
            body = await self.db.fetchval(
                SQL["recipient-message"], token.recipient_id, token.company_id
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _UNAVAILABLE from exc
        if body is None:
            raise _INVALID
        tracking = unseal_tracking(self.codec, body, token.company_id) or Tracking(token.company_id)
        recipient = RecipientLinks(
            self.codec, self.links, tracking, token.recipient_id, token.sent_at
        )
        msg = email.message_from_bytes(body, policy=POLICY)
        del msg[MARKER]
        part = msg.get_body(("html", "plain"))
        if part is None:
            raise _INVALID
        content = part.get_content()
        if part.get_content_type() == "text/html":
            page = without_refresh(recipient.html(content, pixel=False))
        else:
            text = html.escape(recipient.placeholders(content))
            page = f'<pre style="white-space:pre-wrap">{text}</pre>'
        return HTMLResponse(
            page,
            headers={
                "Cache-Control": "no-store",
                # The tenant's own HTML on our origin (issue 12.7): images and styles only; no
                # scripts, forms, <base> or plugins; sandboxed into an opaque origin, so even
                # what a browser let through could not read or act on the tracker's origin.
                "Content-Security-Policy": "default-src 'none'; img-src https: http: data:; "
                "style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'; "
                "frame-ancestors 'none'; sandbox allow-popups allow-popups-to-escape-sandbox",
                "Referrer-Policy": "no-referrer",
            },
        )


# [^<>]: linear on hostile markup (a failed match stops at the next "<").
_META_TAG = re.compile(r"<meta\b[^<>]*>", re.IGNORECASE)


def without_refresh(page: str) -> str:
    """The page without `<meta http-equiv=refresh>`, which no CSP stops: it would make the
    tracker's origin redirect wherever a tenant's HTML says."""

    def keep(match: re.Match[str]) -> str:
        tag = match.group(0).lower()
        return "" if "http-equiv" in tag and "refresh" in tag else match.group(0)

    return _META_TAG.sub(keep, page)


async def page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    headers = {"Retry-After": "60"} if exc.status == 503 else None
    response = _page(exc.title, f"<p>{html.escape(exc.text)}</p>", exc.status)
    if headers:
        response.headers.update(headers)
    metrics.REQUESTS.labels("page", str(exc.status)).inc()
    return response
