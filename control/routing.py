"""Endpoints as declarations: method, path, permission, body and query schemas, response
schema. One wrapper (`EndpointRoute`) does for every endpoint what every endpoint needs —
authenticate, rate-limit, authorise, parse ids, validate, run writes in one transaction with
their audit rows and events, map errors — so a handler holds only its own logic. The same
declarations generate the OpenAPI document (control/openapi.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from control import metrics
from control.errors import (
    Forbidden,
    InvalidJson,
    MfaRequired,
    NotFound,
    TooManyRequests,
    UnsupportedMediaType,
    error_body,
)
from control.fields import INT64_MAX, Field, Schema, query_values
from control.principal import Principal
from control.responses import ApiJSONResponse, dumps
from mta.queries import Queries

SQL = Queries("control")
EVENTS_CHANNEL = "sendmill_control_events"
NOTIFY_LIMIT = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes
PAGE = Field("page", "integer", minimum=1, maximum=1_000_000, default=1)
PAGE_SIZE = Field("page_size", "integer", minimum=1, maximum=200, default=25)
_ID = re.compile(r"\d{1,19}")

Handler = Callable[["Call"], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """One API operation. `permission` None with `public` False: any authenticated caller."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    permission: str | None = None
    public: bool = False
    body: Schema | None = None
    partial: bool = False  # updates: only the fields given
    query: tuple[Field, ...] = ()
    response: Schema | None = None
    paginated: bool = False
    status: int = 200
    mfa_action: str | None = None  # "send" / "approve": TOTP when the company requires it
    raw_body: str | None = None  # content type of a body the handler streams itself
    produces: str = "application/json"
    audited: bool = True
    # writes that can change what a credential stands for (users, API keys): this process's
    # principal cache is emptied once they commit, not only when the notification arrives
    changes_principals: bool = False
    # (status, description) the handler answers beyond the pipeline's own, for the OpenAPI
    # document: e.g. 401 from a public credential exchange
    errors: tuple[tuple[int, str], ...] = ()

    @property
    def write(self) -> bool:
        return self.method != "GET"


@dataclass(slots=True)
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    page_size: int

    def as_json(self) -> dict[str, Any]:
        return {
            "results": self.rows,
            "total": self.total,
            "page": self.page,
            "page_size": self.page_size,
        }


@dataclass(slots=True)
class AuditEntry:
    action: str
    resource: str
    resource_id: str | None
    before: Any
    after: Any
    company_id: int | None = None
    user_id: int | None = None


@dataclass(slots=True)
class Call:
    """What a handler gets: the request, who is calling, the database (a connection inside
    a transaction for writes), validated input, and hooks for audit rows and events."""

    request: Request
    services: Any  # control.app.Services
    principal: Principal | None
    db: asyncpg.Pool | asyncpg.Connection
    ids: dict[str, int]
    query: dict[str, Any]
    body: dict[str, Any] | None
    request_id: str
    ip: str | None
    audits: list[AuditEntry] = field(default_factory=list)
    events: list[tuple[int, str, Any]] = field(default_factory=list)

    @property
    def company_id(self) -> int:
        assert self.principal is not None
        return self.principal.company_id

    @property
    def user_id(self) -> int | None:
        return self.principal.user_id if self.principal else None

    @property
    def limit_offset(self) -> tuple[int, int]:
        size = self.query["page_size"]
        return size, (self.query["page"] - 1) * size

    def page(self, rows: list[Any], total: int | None = None) -> Page:
        """A page from rows that carry `total` (count(*) OVER ()) or an explicit total."""
        items = [dict(r) for r in rows]
        if total is None:
            total = items[0].pop("total", 0) if items else 0
            for item in items:
                item.pop("total", None)
        return Page(items, total, self.query["page"], self.query["page_size"])

    def audit(
        self,
        action: str,
        resource: str,
        resource_id: Any,
        before: Any = None,
        after: Any = None,
        *,
        company_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        rid = None if resource_id is None else str(resource_id)
        entry = AuditEntry(action, resource, rid, _plain(before), _plain(after))
        entry.company_id, entry.user_id = company_id, user_id
        self.audits.append(entry)

    def emit(self, event: str, data: Any, company_id: int | None = None) -> None:
        """Publish `event` to the company's WebSocket clients once the write commits."""
        self.events.append((company_id or self.company_id, event, data))


def _plain(value: Any) -> Any:
    """A JSON-ready copy (records, datetimes...) for the audit row's jsonb."""
    if value is None:
        return None
    return json.loads(dumps(dict(value) if isinstance(value, asyncpg.Record) else value))


class EndpointRoute(Route):
    """A Starlette route running one `Endpoint` through the common request pipeline."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.spec = endpoint
        query = endpoint.query + ((PAGE, PAGE_SIZE) if endpoint.paginated else ())
        self._query_fields = query
        super().__init__(endpoint.path, self._handle, methods=[endpoint.method])

    async def _handle(self, request: Request) -> Response:
        state = request.scope.setdefault("state", {})
        request_id = state.get("request_id", "")
        started = time.perf_counter()
        try:
            response = await self._run(request, request_id)
        except Exception as exc:  # the one place errors become responses
            status, body, headers = error_body(exc, request_id)
            response = ApiJSONResponse(body, status_code=status, headers=headers)
        spec = self.spec
        metrics.REQUESTS.labels(spec.path, spec.method, str(response.status_code)).inc()
        metrics.REQUEST_SECONDS.labels(spec.tag).observe(time.perf_counter() - started)
        return response

    async def _run(self, request: Request, request_id: str) -> Response:
        spec = self.spec
        services = request.app.state.services
        principal = None
        if not spec.public:
            principal = await services.auth.authenticate(request.headers.get("authorization"))
            wait = services.limiter.acquire(principal.rate_key)
            if wait:
                raise TooManyRequests("request rate limit exceeded", wait)
            if spec.permission and not principal.can(spec.permission):
                raise Forbidden(
                    f"permission {spec.permission} required", permission=spec.permission
                )
        ids = {}
        for name, raw in request.path_params.items():
            if not _ID.fullmatch(raw) or not 0 < int(raw) <= INT64_MAX:
                raise NotFound(name.removesuffix("_id").replace("_", " "))
            ids[name] = int(raw)
        query = query_values(request.query_params, self._query_fields)
        body = None
        if spec.body is not None:
            body = spec.body.validate(await _json_body(request), partial=spec.partial)
        elif spec.raw_body is not None:
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != spec.raw_body:
                raise UnsupportedMediaType(f"expected Content-Type: {spec.raw_body}")
        ip = request.client.host if request.client else None
        call = Call(request, services, principal, services.db, ids, query, body, request_id, ip)
        if spec.mfa_action and principal is not None:
            await _check_mfa(services.db, principal, spec.mfa_action)
        if not spec.write or not spec.audited:
            result = await spec.handler(call)
        else:
            async with services.db.acquire() as conn, conn.transaction():
                call.db = conn
                result = await spec.handler(call)
                await record(conn, call)
            if spec.changes_principals:
                services.auth.principals.invalidate()
        return self._respond(result)

    def _respond(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        if isinstance(result, Page):
            result = result.as_json()
        if result is None:
            return Response(status_code=204)
        return ApiJSONResponse(result, status_code=self.spec.status)


async def _json_body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UnsupportedMediaType("expected Content-Type: application/json")
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None


async def _check_mfa(db: asyncpg.Pool, principal: Principal, action: str) -> None:
    required = await db.fetchval(SQL["mfa-required-for"], principal.company_id)
    if required and action in required and not principal.mfa:
        raise MfaRequired(
            f"your company requires a TOTP-verified login to {action}; "
            "log in again with your TOTP code",
            action=action,
        )


async def record(conn: asyncpg.Connection, call: Call) -> None:
    """Write `call`'s audit rows and events on `conn` (inside the caller's transaction).
    The pipeline does it for every audited write; endpoints that run their own transactions
    (streamed imports) call it themselves."""
    principal = call.principal
    for entry in call.audits:
        company_id = entry.company_id or (principal.company_id if principal else None)
        if company_id is None:
            continue
        await conn.execute(
            SQL["insert-audit"],
            company_id,
            entry.user_id
            or (principal.user_id if principal and not principal.api_key_id else None),
            principal.api_key_id if principal else None,
            entry.action,
            entry.resource,
            entry.resource_id,
            entry.before,
            entry.after,
            call.ip,
            call.request_id,
        )
    for company_id, event, data in call.events:
        payload = dumps({"company_id": company_id, "event": event, "data": data}).decode()
        if len(payload.encode()) > NOTIFY_LIMIT:
            slim = {"id": data.get("id")} if isinstance(data, dict) else None
            payload = dumps({"company_id": company_id, "event": event, "data": slim}).decode()
        await conn.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, payload)


class Api:
    """The registry endpoints are declared into (`api.add(...)`), in order."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def add(self, method: str, path: str, summary: str, tag: str, **kw: Any) -> Callable:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(method, path, handler, summary, tag, **kw))
            return handler

        return register

    def routes(self) -> list[Route]:
        return [EndpointRoute(e) for e in self.endpoints]
