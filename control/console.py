"""The web console's files (issue 17), served at `/ui` on the control listener.

The console is a single-page application built by Vite from `control/console/` into
`control/console/dist/` (`./dev` builds it when its sources change; a wheel ships the built
files as package data). It talks to the public control API only, with the same tokens and
permissions as any client: this module serves files and nothing else.

Every response carries a strict Content-Security-Policy (no inline script or style, no other
origin, no framing) and `Referrer-Policy: no-referrer`. The one exception is `preview.html`,
the document that shows an email: the console frames it sandboxed (scripts, no same origin),
and its policy lets the email's inline styles and remote images apply, never its scripts. The
other is `builder.html`, the drag-and-drop builder (GrapesJS writes inline styles into its
canvas): inline styles are allowed there, scripts still only from the console's own files.
Hashed assets are cached for a year; the page itself is never cached, so a new build is picked
up at the next load. Any path under `/ui/` that is not a file is the page (the application
routes in the browser's history).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

DIST = Path(__file__).parent / "console" / "dist"
PREFIX = "/ui"

# 'self' only: the API and the WebSocket are same-origin; charts draw on a canvas; the only
# images are the console's own and data: URIs; the only frame is the email preview.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    )
)
# The preview document: its own script only; the email's styles and images (as its recipients
# would see them); no script of the email, no form, no connection, framed by the console only.
PREVIEW_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'unsafe-inline'",
        "img-src https: http: data:",
        "font-src https: data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    )
)
# The builder document: GrapesJS styles its panels and canvas inline; scripts stay 'self'.
BUILDER_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https: http:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
PREVIEW_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": PREVIEW_POLICY,
    "X-Frame-Options": "SAMEORIGIN",
}
BUILDER_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": BUILDER_POLICY}
# The documents besides the console's page, each with its own headers.
DOCUMENTS = {"preview.html": PREVIEW_HEADERS, "builder.html": BUILDER_HEADERS}
# The sandboxed preview has an opaque origin, so its module script is a cross-origin fetch:
# the built files are public, credential-free, and may be read from anywhere.
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "Access-Control-Allow-Origin": "*",
}
NO_STORE = "no-store"
NOT_BUILT = (
    "The web console is not built. Run `./dev serve` (it builds it), or "
    "`npm ci && npm run build` in control/console/."
)


class ConsoleFiles:
    """ASGI app for `/ui`: the built files under `root`, the page for every other path."""

    def __init__(self, root: Path = DIST) -> None:
        self.root = root.resolve()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._response(scope)
        relative = scope["path"].removeprefix(PREFIX).lstrip("/")
        response.headers.update(DOCUMENTS.get(relative, SECURITY_HEADERS))
        await response(scope, receive, send)

    def _response(self, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return PlainTextResponse("method not allowed", 405, headers={"Allow": "GET, HEAD"})
        index = self.root / "index.html"
        if not index.is_file():
            return PlainTextResponse(NOT_BUILT, 503, headers={"Cache-Control": NO_STORE})
        relative = scope["path"].removeprefix(PREFIX).lstrip("/")
        if relative in DOCUMENTS:
            page = self.root / relative
            return FileResponse(page, media_type="text/html", headers={"Cache-Control": NO_STORE})
        if not relative.startswith("assets/"):
            return FileResponse(index, media_type="text/html", headers={"Cache-Control": NO_STORE})
        asset = self._asset(relative)
        if asset is None:
            return PlainTextResponse("not found", 404)
        media_type = mimetypes.guess_type(asset.name)[0] or "application/octet-stream"
        return FileResponse(asset, media_type=media_type, headers=ASSET_HEADERS)

    def _asset(self, relative: str) -> Path | None:
        """The built file `relative` names, if there is one (never outside the root)."""
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file():
            return None
        return candidate
