"""The tracker's pages: unsubscribe, preferences and "view in browser".

    GET  /u/TOKEN        states what will happen; one button (this list), one for all lists
    POST /u/TOKEN        unsubscribes at once; `List-Unsubscribe=One-Click` (RFC 8058) gets a
                         plain 200 with no further step
    GET/POST /p/TOKEN    stay on or leave this list / all the company's lists
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
import time
from urllib.parse import parse_qs

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


class PageError(Exception):
    def __init__(self, status: int, title: str, text: str) -> None:
        self.status, self.title, self.text = status, title, text


_INVALID = PageError(
    404, "Link not valid", "This link is not valid. Please use the link from the message."
)
_UNAVAILABLE = PageError(
    503, "Try again shortly", "We could not process this right now. Please try again in a minute."
)


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

    async def _form(self, request: Request) -> dict[str, str]:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                break
        text = body[:_MAX_FORM].decode("utf-8", "replace")
        if "multipart/form-data" in request.headers.get("content-type", ""):
            # RFC 8058 allows multipart: only the field names matter here
            return {"List-Unsubscribe": "One-Click"} if "One-Click" in text else {}
        return {k: v[0] for k, v in parse_qs(text).items()}

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
        user_agent, ip, _ = self.hits.request_info(request.scope["headers"], request.client)
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
        token = self._token(request, TokenKind.UNSUBSCRIBE)
        address = await self._address(token)
        try:
            if request.method == "POST":
                await self._apply_preference(
                    token, address, (await self._form(request)).get("action", "")
                )
            lists = {
                u.list_id
                for u in await unsubscriptions.unsubscribed_lists(
                    self.db, token.company_id, address
                )
            }
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _UNAVAILABLE from exc
        everything_off = unsubscriptions.ALL_LISTS in lists
        rows = []
        if token.list_id:
            on = token.list_id not in lists and not everything_off
            state = "subscribed" if on else "unsubscribed"
            action = ("leave-list", "Leave this list") if on else ("join-list", "Stay on this list")
            rows.append(f"<p>This list: <strong>{state}</strong></p>" + _button("action", *action))
        state = "unsubscribed from all lists" if everything_off else "receiving our emails"
        action = (
            ("join-all", "Receive our emails again")
            if everything_off
            else ("leave-all", "Unsubscribe from all lists")
        )
        rows.append(
            f"<p>Overall: <strong>{state}</strong></p>" + _button("action", *action, "secondary")
        )
        return _page(
            "Email preferences",
            f"<p>Preferences for <strong>{html.escape(address)}</strong></p>"
            f'<form method="post">{"".join(rows)}</form>',
        )

    async def _apply_preference(self, token: Token, address: str, action: str) -> None:
        company = token.company_id
        if action == "leave-list" and token.list_id:
            await unsubscriptions.unsubscribe(
                self.db, company, address, token.list_id, source="page"
            )
        elif action == "join-list" and token.list_id:
            await unsubscriptions.resubscribe(self.db, company, address, token.list_id)
        elif action == "leave-all":
            await unsubscriptions.unsubscribe(self.db, company, address, source="page")
        elif action == "join-all":
            await unsubscriptions.resubscribe(self.db, company, address)

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
            page = recipient.html(content, pixel=False)
        else:
            text = html.escape(recipient.placeholders(content))
            page = f'<pre style="white-space:pre-wrap">{text}</pre>'
        return HTMLResponse(
            page,
            headers={
                "Cache-Control": "no-store",
                # the message's own HTML: no scripts, no forms, images and styles only
                "Content-Security-Policy": "default-src 'none'; img-src https: http: data:; "
                "style-src 'unsafe-inline'; frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer",
            },
        )


async def page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    headers = {"Retry-After": "60"} if exc.status == 503 else None
    response = _page(exc.title, f"<p>{html.escape(exc.text)}</p>", exc.status)
    if headers:
        response.headers.update(headers)
    metrics.REQUESTS.labels("page", str(exc.status)).inc()
    return response
