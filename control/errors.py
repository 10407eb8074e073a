"""The control API's errors and the one place they become HTTP responses.

Domain code raises a `ControlError` subclass (or lets a database error escape); `error_body`
turns any exception into `{"error_code", "message", "details"}` with its status. Nothing else
in `control/` builds an error response.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from control import campaign_status as cs

log = logging.getLogger("sendmill.control")

RETRY_AFTER_UNAVAILABLE = "5"


class ControlError(Exception):
    """An error a client can act on; subclasses fix the status and the error code."""

    status: ClassVar[int] = 400
    error_code: ClassVar[str] = "bad_request"

    def __init__(
        self, message: str, details: Mapping[str, Any] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = {**(details or {}), **extra}
        self.headers: dict[str, str] = {}


class BadRequest(ControlError):
    status = 400
    error_code = "bad_request"


class InvalidJson(ControlError):
    status = 400
    error_code = "invalid_json"


class ValidationFailed(ControlError):
    """Fields of the request are missing or invalid; `details.fields` maps each to a reason."""

    status = 422
    error_code = "validation_failed"

    def __init__(self, fields: Mapping[str, str], message: str | None = None) -> None:
        first = next(iter(fields.items()), ("", ""))
        super().__init__(message or f"{first[0]}: {first[1]}", fields=dict(fields))


class Unauthorized(ControlError):
    status = 401
    error_code = "unauthorized"

    def __init__(self, message: str = "authentication required", **extra: Any) -> None:
        super().__init__(message, **extra)
        # RFC 6750 §3
        self.headers["WWW-Authenticate"] = 'Bearer realm="sendmill-control"'


class InvalidToken(Unauthorized):
    error_code = "invalid_token"


class TotpRequired(Unauthorized):
    error_code = "totp_required"


class Forbidden(ControlError):
    status = 403
    error_code = "permission_denied"


class MfaRequired(Forbidden):
    error_code = "mfa_required"


class NotFound(ControlError):
    """Also the answer for another company's ids: their existence is not revealed."""

    status = 404
    error_code = "not_found"

    def __init__(self, what: str = "resource") -> None:
        super().__init__(f"{what} not found")


class Conflict(ControlError):
    status = 409
    error_code = "conflict"


class InUse(Conflict):
    error_code = "in_use"


class InvalidTransition(Conflict):
    error_code = "invalid_transition"


class ContentRejected(ControlError):
    """Content checks found errors (blueprint §6.2); `details` is the whole report."""

    status = 422
    error_code = "content_rejected"

    def __init__(self, report: Any) -> None:
        errors = report.errors
        message = "; ".join(e.message for e in errors[:3]) or "content checks failed"
        super().__init__(message, report.to_dict())


class BodyTooLarge(ControlError):
    status = 413
    error_code = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds the limit of {limit} bytes", limit=limit)


class UnsupportedMediaType(ControlError):
    status = 415
    error_code = "unsupported_media_type"


class TooManyRequests(ControlError):
    status = 429
    error_code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, retry_after=seconds)
        self.headers["Retry-After"] = str(seconds)


# Database failures that mean "try again later", not a bug: 08 connection, 53 resources,
# 57 operator intervention.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
)

# Unique indexes whose violation means "this code is taken": index name -> field.
UNIQUE_FIELDS = {
    "email_campaigns_code": "campaign_code",
    "email_templates_code": "template_code",
    "email_lists_code": "list_code",
    "email_workflows_code": "workflow_code",
    "contacts_email": "email",
    "users_email": "email",
}


def error_body(exc: BaseException, request_id: str = "") -> tuple[int, dict[str, Any], dict]:
    """The one mapping from an exception to (status, body, headers)."""
    if isinstance(exc, ControlError):
        return exc.status, _body(exc.error_code, exc.message, exc.details), exc.headers
    mapped = _campaign_rule(exc)
    if mapped is not None:
        return mapped[0], mapped[1], {}
    if isinstance(exc, asyncpg.UniqueViolationError):
        field = UNIQUE_FIELDS.get(exc.constraint_name or "", "")
        message = f"{field} is already in use" if field else "the record already exists"
        return 409, _body("duplicate", message, {"field": field} if field else {}), {}
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return 422, _body("invalid_reference", "a referenced record does not exist", {}), {}
    if isinstance(exc, asyncpg.DataError | asyncpg.CheckViolationError):
        # Values our validation let through but PostgreSQL refuses (out-of-range numbers...).
        return 422, _body("validation_failed", f"invalid value: {exc}", {}), {}
    if isinstance(exc, HTTPException):
        status = exc.status_code
        phrase = HTTPStatus(status).phrase if status in _STATUSES else "error"
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        return status, _body(code, str(exc.detail), {}), dict(exc.headers or {})
    if isinstance(exc, ClientDisconnect):
        return 400, _body("client_disconnected", "the client closed the request", {}), {}
    if isinstance(exc, DATABASE_UNAVAILABLE):
        return (
            503,
            _body("database_unavailable", "the database is unavailable; try again later", {}),
            {"Retry-After": RETRY_AFTER_UNAVAILABLE},
        )
    log.error("unhandled error in request %s", request_id, exc_info=exc)
    return 500, _body("internal_error", "internal error", {"request_id": request_id}), {}


_STATUSES = frozenset(s.value for s in HTTPStatus)


def _campaign_rule(exc: BaseException) -> tuple[int, dict[str, Any]] | None:
    """The campaign rules' exceptions (control/campaign_status.py, pure code) as responses."""
    message = str(exc)
    if isinstance(exc, cs.TransitionNotAllowed):
        details = {"current": exc.current, "target": exc.target, "allowed": list(exc.allowed)}
        return 409, _body("invalid_transition", message, details)
    if isinstance(exc, cs.ApprovalRequired):
        details = {"approval_status": exc.status, "rejection_reason": exc.rejection_reason}
        return 409, _body("approval_required", message, details)
    if isinstance(exc, cs.SelfApprovalRefused):
        return 403, _body("self_approval", message, {})
    if isinstance(exc, cs.ApprovalPermissionDenied):
        return 403, _body("permission_denied", message, {"permission": "campaigns:approve"})
    if isinstance(exc, cs.NotPendingApproval):
        return 409, _body("not_pending_approval", message, {"approval_status": exc.status})
    if isinstance(exc, cs.RejectionReasonMissing):
        return 422, _body("validation_failed", message, {"fields": {"reason": message}})
    if isinstance(exc, cs.ScheduleRejected):
        problems = [{"code": p.code, "message": p.message, **p.details} for p in exc.problems]
        return 422, _body("schedule_rejected", message, {"problems": problems})
    if isinstance(exc, cs.SettingsError):
        return 422, _body("invalid_settings", message, {})
    return None


def _body(code: str, message: str, details: Mapping[str, Any]) -> dict[str, Any]:
    return {"error_code": code, "message": message, "details": dict(details)}
