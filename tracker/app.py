"""The tracker's HTTP endpoints: open pixel, click redirect, unsubscribe, preferences, view.

    GET  /o/TOKEN   the 43-byte transparent GIF, always 200 (a bad token records nothing)
    GET  /c/TOKEN   302 to the signed URL; HEAD answers the same without recording a click;
                    a bad token is a 404 and never a redirect
    GET  /u/TOKEN   the unsubscribe page: one button (this list), one for all lists
    POST /u/TOKEN   unsubscribes at once; `List-Unsubscribe=One-Click` (RFC 8058) gets a 200
    GET/POST /p/TOKEN   the preference page: stay on or leave this list / all lists
    GET  /v/TOKEN   "view in browser": the recipient's HTML part
    GET  /metrics /healthz

The pixel and the redirect are the hot paths (millions per campaign, in bursts): they are
plain ASGI handlers in front of the Starlette app, doing one HMAC, one dictionary lookup for
machine detection and one append to the event buffer — no database, no routing table, no
Request object. Profiling the Starlette version showed routing and Response objects costing
more than the work itself. The rarer pages are ordinary Starlette routes.
"""

from __future__ import annotations

import email
import html
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from mta import metrics as mta_metrics
from mta import unsubscriptions
from mta.compose import POLICY
from mta.queries import Queries
from tracker import metrics
from tracker.events import Event, EventWriter
from tracker.machine import MachineRules
from tracker.machine import Request as MachineRequest
from tracker.prepare import MARKER, Links, RecipientLinks, Tracking, unseal_tracking
from tracker.tokens import Token, TokenCodec, TokenError, TokenKind

SQL = Queries("tracker")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# The smallest transparent GIF: 1x1, one-colour palette, transparent index 0 (43 bytes).
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
assert len(GIF) == 43
_NO_STORE = (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0")
# Characters a Location header may carry as they are; anything else (non-ASCII, spaces,
# controls) is percent-encoded.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~-._"
_INTERESTING = frozenset({b"user-agent", b"purpose", b"sec-purpose", b"x-moz", b"x-forwarded-for"})
_MAX_FORM = 8192
_REASONS = {200: b"OK", 302: b"Found", 404: b"Not Found"}
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete answer of a hot path, served as ASGI messages or as raw HTTP/1.1 bytes."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""
    cacheable: bool = False  # the same bytes every time (servers may cache the head)

    def head(self, extra: Headers, keep_alive: bool) -> bytes:
        lines = [b"HTTP/1.1 %d %s\r\n" % (self.status, _REASONS[self.status])]
        lines += [name + b": " + value + b"\r\n" for name, value in (*extra, *self.headers)]
        if not keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    async def send(self, send: Send, head_only: bool) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b"" if head_only else self.body})


GIF_REPLY = Reply(
    200,
    (
        (b"content-type", b"image/gif"),
        (b"content-length", b"43"),
        _NO_STORE,
        (b"expires", b"0"),
        (b"pragma", b"no-cache"),
    ),
    GIF,
    cacheable=True,
)
_NOT_FOUND = b"Not found: this link is not valid.\n"
NOT_FOUND_REPLY = Reply(
    404,
    (
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(_NOT_FOUND)).encode()),
        _NO_STORE,
    ),
    _NOT_FOUND,
    cacheable=True,
)


_REDIRECTS: dict[str, Reply] = {}
_REDIRECTS_MAX = 16384  # a campaign's links repeat for every recipient: remember their answers


def redirect(url: str) -> Reply:
    reply = _REDIRECTS.get(url)
    if reply is None:
        if len(_REDIRECTS) >= _REDIRECTS_MAX:
            _REDIRECTS.clear()
        reply = _REDIRECTS[url] = _redirect(url)
    return reply


def _redirect(url: str) -> Reply:
    location = quote(url, safe=_URL_SAFE).encode("ascii")
    return Reply(
        302,
        (
            (b"location", location),
            (b"content-length", b"0"),
            _NO_STORE,
            (b"referrer-policy", b"no-referrer"),
        ),
        cacheable=True,
    )


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


class OpenPixel:
    """`GET /o/TOKEN`: always the GIF; an open is recorded only for a valid token. HEAD gets
    the same answer and records nothing."""

    def __init__(self, hits: Hits) -> None:
        self.hits = hits

    def reply(
        self, method: str, path: str, headers: Headers, client: tuple[str, int] | None
    ) -> Reply:
        tally = self.hits.tally
        if method == "HEAD":
            tally.request("open", "head")
            return GIF_REPLY
        try:
            token = self.hits.codec.verify(path[3:], TokenKind.OPEN)
        except TokenError:
            tally.request("open", "invalid")
            return GIF_REPLY
        self.hits.record("open", token, headers, client)
        tally.request("open", "recorded")
        return GIF_REPLY


class ClickRedirect:
    """`GET /c/TOKEN`: 302 to the URL signed inside the token; anything else is a 404. HEAD
    gets the same answer and records nothing (link checkers and prefetchers)."""

    def __init__(self, hits: Hits) -> None:
        self.hits = hits

    def reply(
        self, method: str, path: str, headers: Headers, client: tuple[str, int] | None
    ) -> Reply:
        tally = self.hits.tally
        try:
            token = self.hits.codec.verify(path[3:], TokenKind.CLICK)
            if not token.url.lower().startswith(("https://", "http://")):
                raise TokenError("not an http(s) target")  # we never sign one; never follow one
        except TokenError:
            tally.request("click", "invalid")
            return NOT_FOUND_REPLY
        if method == "HEAD":
            tally.request("click", "head")
        else:
            self.hits.record("click", token, headers, client)
            tally.request("click", "recorded")
        return redirect(token.url)


class TrackerApp:
    """The ASGI app: hot paths first, everything else through Starlette. `hot` is the same
    decision for servers that answer the hot paths without ASGI (`tracker.fastlane`)."""

    def __init__(self, hits: Hits, pages: Starlette) -> None:
        self.hits = hits
        self.open = OpenPixel(hits)
        self.click = ClickRedirect(hits)
        self.pages = pages

    def hot(
        self, method: str, path: str, headers: Headers, client: tuple[str, int] | None
    ) -> Reply | None:
        """The reply of a pixel or redirect request; None for anything else."""
        if method not in ("GET", "HEAD"):
            return None
        if path.startswith("/o/"):
            return self.open.reply(method, path, headers, client)
        if path.startswith("/c/"):
            return self.click.reply(method, path, headers, client)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reply = self.hot(scope["method"], scope["path"], scope["headers"], scope.get("client"))
            if reply is not None:
                return await reply.send(send, scope["method"] == "HEAD")
        await self.pages(scope, receive, send)


# --- pages --------------------------------------------------------------------------------

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


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    headers = {"Retry-After": "60"} if exc.status == 503 else None
    response = _page(exc.title, f"<p>{html.escape(exc.text)}</p>", exc.status)
    if headers:
        response.headers.update(headers)
    metrics.REQUESTS.labels("page", str(exc.status)).inc()
    return response


async def _metrics(request: Request) -> Response:
    body, content_type = mta_metrics.render()
    return Response(body, media_type=content_type)


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def create_app(
    *,
    db: asyncpg.Pool,
    codec: TokenCodec,
    links: Links,
    writer: EventWriter,
    rules: MachineRules | None = None,
    trust_forwarded: bool = False,
) -> TrackerApp:
    """The tracker app. `writer` must be started by the caller (and stopped on shutdown)."""
    hits = Hits(codec, writer, rules or MachineRules.load(), trust_forwarded)
    pages = Pages(db, codec, links, hits)
    routes = [
        Route("/u/{token}", pages.unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", pages.unsubscribe, methods=["POST"]),
        Route("/p/{token}", pages.preferences, methods=["GET", "POST"]),
        Route("/v/{token}", pages.view, methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
        Route("/healthz", _healthz, methods=["GET"]),
    ]
    return TrackerApp(hits, Starlette(routes=routes, exception_handlers={PageError: _page_error}))
