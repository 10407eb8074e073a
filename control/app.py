"""The control API application: `create_app(db, config, server_secret)` builds the Starlette
app the daemon serves on `[control] listen`.

Every request passes `RequestContext` (request id, body size limit) and then one
`EndpointRoute` (control/routing.py) that authenticates, authorises, validates and maps
errors. Endpoints are declared in `control/routes/*.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control import content_pool, openapi, websocket
from control.auth import Authenticator, password_hasher
from control.console import ConsoleFiles
from control.errors import BodyTooLarge, error_body
from control.events import EventHub
from control.ratelimit import RateLimiter, SharedRateTable
from control.responses import ApiJSONResponse
from control.routes import ALL_APIS
from control.spamd import SpamdClient
from mta.config import Config, ControlConfig, parse_hostport
from mta.domain_keys import KeySeal
from mta.sending_domains import DomainManager

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass
class Services:
    """What endpoints share: the pool, the authenticator, the rate limiter, the event hub."""

    db: asyncpg.Pool
    config: ControlConfig
    auth: Authenticator
    limiter: RateLimiter
    hub: EventHub
    spamd: SpamdClient | None = None
    max_age: float = 5 * 86400.0  # delivery.max_age: how long test sends may wait in the queue
    domains: DomainManager | None = None  # sending domains (mta/sending_domains.py)


def jwt_secret(config: Config, server_secret: bytes) -> bytes:
    """`control.jwt_secret`, else a key derived from the server secret (never the secret
    itself, so a leaked token key does not forge VERP tokens)."""
    if config.control.jwt_secret:
        return config.control.jwt_secret.encode()
    return hmac.new(server_secret, b"sendmill control jwt", hashlib.sha256).digest()


class RequestContext:
    """Gives every request an id (the client's `X-Request-Id` when sane) echoed in the
    response, and refuses bodies over the limit: at once from Content-Length, else as the
    body streams in. Import endpoints get the larger import limit."""

    def __init__(
        self, app: ASGIApp, max_body: int, max_import: int, is_import: Callable[[str], bool]
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_import = max_import
        self.is_import = is_import

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.max_import if self.is_import(scope["path"]) else self.max_body

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        length = headers.get(b"content-length")
        too_large = length is not None and (not length.isdigit() or int(length) > limit)
        if scope["method"] in _BODY_METHODS and too_large:
            status, body, extra = error_body(BodyTooLarge(limit), request_id)
            extra["Connection"] = "close"
            response = ApiJSONResponse(body, status_code=status, headers=extra)
            await response(scope, receive, send_with_id)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send_with_id)


async def _http_error(request: Request, exc: Exception) -> Response:
    status, body, headers = error_body(exc, request.scope.get("state", {}).get("request_id", ""))
    return ApiJSONResponse(body, status_code=status, headers=headers)


def create_app(
    db: asyncpg.Pool, config: Config, server_secret: bytes, rates: SharedRateTable | None = None
) -> Starlette:
    """The control API on pool `db`, configured by `config.control`; `rates` is the request
    rate table its processes share (a private one when absent)."""
    control = config.control
    auth = Authenticator(
        db,
        jwt_secret(config, server_secret),
        access_ttl=control.access_token_ttl,
        refresh_ttl=control.refresh_token_ttl,
        max_failures=control.login_max_failures,
        max_failures_per_address=control.login_max_failures_per_address,
        max_failures_per_account=control.login_max_failures_per_account,
        lockout=control.login_lockout,
        hasher=password_hasher(control.password_time_cost, control.password_memory_kib),
    )
    services = Services(
        db=db,
        config=control,
        auth=auth,
        limiter=RateLimiter(control.rate_limit, control.rate_burst, rates),
        hub=EventHub(db),
        spamd=SpamdClient(*parse_hostport(control.spamd, 783, "control.spamd"))
        if control.spamd
        else None,
        max_age=config.delivery.max_age,
        domains=DomainManager(db, config, KeySeal(server_secret)),
    )
    content_pool.configure(control.content_check_processes, control.content_check_timeout)
    endpoints = [e for api in ALL_APIS for e in api.endpoints]
    console = ConsoleFiles()
    document = openapi.document(endpoints)
    routes = [r for api in ALL_APIS for r in api.routes()]
    routes += [
        Route("/api/openapi.json", lambda _: ApiJSONResponse(document), methods=["GET"]),
        Route("/api/docs", lambda _: HTMLResponse(openapi.DOCS_PAGE), methods=["GET"]),
        WebSocketRoute("/api/ws", websocket.events_socket),
        # The web console (issue 17): static files over the same public API.
        Route("/", lambda _: RedirectResponse("/ui/"), methods=["GET"]),
        Route("/ui", console, methods=["GET", "HEAD"]),
        Route("/ui/{path:path}", console, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.services = services
    app.add_middleware(
        RequestContext,
        max_body=control.max_body_size,
        max_import=control.max_import_size,
        is_import=lambda path: path.endswith("/imports/"),
    )
    return app
