"""The tracker's HTTP endpoints: open pixel, click redirect, unsubscribe, preferences, view.

    GET  /o/TOKEN   the 43-byte transparent GIF, always 200 (a bad token records nothing)
    GET  /c/TOKEN   302 to the signed URL; HEAD answers the same without recording a click;
                    a bad token is a 404 and never a redirect
    GET  /u/TOKEN   the unsubscribe page: one button (this list), one for all lists
    POST /u/TOKEN   unsubscribes at once; `List-Unsubscribe=One-Click` (RFC 8058) gets a 200
    GET/POST /p/TOKEN   the preference page: the tenant's lists by name, which to stay on
    GET  /v/TOKEN   "view in browser": the recipient's HTML part
    GET  /metrics /healthz

The pixel and the redirect are the hot paths (millions per campaign, in bursts): `hot` answers
them with a prepared `Reply`, doing one HMAC, cached machine classification and one append to
the event buffer — no database, no routing table, no Request object (profiling showed those
costing more than the work itself). As ASGI they sit in front of the Starlette app; under the
daemon's server they are answered straight from the HTTP parser (`tracker.fastlane`). The
rarer pages are ordinary Starlette routes (`tracker.pages`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mta import metrics as mta_metrics
from tracker.events import EventWriter
from tracker.hits import Headers, Hits
from tracker.machine import MachineRules
from tracker.pages import PageError, Pages, page_error
from tracker.prepare import Links
from tracker.tokens import TokenCodec, TokenError, TokenKind

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
_REASONS = {200: b"OK", 302: b"Found", 404: b"Not Found"}


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
    return TrackerApp(hits, Starlette(routes=routes, exception_handlers={PageError: page_error}))
