"""What Sendmill's HTTP APIs (submission and bounce in mta/http_api.py, control in
control/errors.py) share about errors: the one JSON shape `{"error_code", "message",
"details"}`, the errors of the HTTP layer itself, and the answers to what the framework and
the database raise. Each API still turns exceptions into responses in one place of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

RETRY_AFTER_UNAVAILABLE = "5"
_STATUSES = frozenset(s.value for s in HTTPStatus)

# Failures that mean "the database cannot be reached right now", not a bug: the client may
# retry. Class 08 connection, 53 resources, 57 operator intervention.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
)


class HttpError(Exception):
    """An error a client can act on; subclasses fix the status and the error code, and may
    add response header fields (`HEADERS`, or `self.headers` per instance)."""

    status: ClassVar[int] = 400
    error_code: ClassVar[str] = "bad_request"
    HEADERS: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self, message: str, details: Mapping[str, Any] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = {**(details or {}), **extra}
        self.headers: dict[str, str] = dict(self.HEADERS)


class BadRequest(HttpError):
    status = 400
    error_code = "bad_request"


class InvalidJson(HttpError):
    status = 400
    error_code = "invalid_json"


class Unauthorized(HttpError):
    status = 401
    error_code = "unauthorized"
    HEADERS: ClassVar[Mapping[str, str]] = {
        "WWW-Authenticate": 'Bearer realm="sendmill"'
    }  # RFC 6750 §3


class NotFound(HttpError):
    status = 404
    error_code = "not_found"


class BodyTooLarge(HttpError):
    status = 413
    error_code = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds the limit of {limit} bytes", limit=limit)


class UnsupportedMediaType(HttpError):
    status = 415
    error_code = "unsupported_media_type"


def error_json(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict:
    """The body of every error answer."""
    return {"error_code": code, "message": message, "details": dict(details or {})}


def common_error(
    exc: BaseException, unavailable: str
) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """(status, body, headers) for what any of the APIs may raise — our `HttpError`s,
    Starlette's HTTP exceptions, a client gone mid-request, the database out of reach
    (answered with `unavailable`) — or None for what the API maps itself."""
    if isinstance(exc, HttpError):
        return exc.status, error_json(exc.error_code, exc.message, exc.details), exc.headers
    if isinstance(exc, HTTPException):
        status = exc.status_code
        phrase = HTTPStatus(status).phrase if status in _STATUSES else "error"
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        return status, error_json(code, str(exc.detail)), dict(exc.headers or {})
    if isinstance(exc, ClientDisconnect):
        return 400, error_json("client_disconnected", "the client closed the request"), {}
    if isinstance(exc, DATABASE_UNAVAILABLE):
        headers = {"Retry-After": RETRY_AFTER_UNAVAILABLE}
        return 503, error_json("database_unavailable", unavailable), headers
    return None
