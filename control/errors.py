"""The control API's errors and the one place they become HTTP responses.

Domain code raises a `ControlError` subclass (or lets a database error escape); `error_body`
turns any exception into `{"error_code", "message", "details"}` with its status. Nothing else
in `control/` builds an error response.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import asyncpg

from control import campaign_status as cs
from control.content_pool import ContentCheckTimeout
from mta import http_errors
from mta import sending_domains as sd
from mta.http_errors import (  # noqa: F401 - re-exported: control's errors in one place
    BadRequest,
    BodyTooLarge,
    HttpError,
    InvalidJson,
    UnsupportedMediaType,
    common_error,
    error_json,
)

log = logging.getLogger("sendmill.control")


# The control API's errors are the HTTP layer's (mta/http_errors.py); the ones the APIs share
# are re-exported here so control code imports its errors from one place.
ControlError = HttpError


class ValidationFailed(ControlError):
    """Fields of the request are missing or invalid; `details.fields` maps each to a reason."""

    status = 422
    error_code = "validation_failed"

    def __init__(self, fields: Mapping[str, str], message: str | None = None) -> None:
        first = next(iter(fields.items()), ("", ""))
        super().__init__(message or f"{first[0]}: {first[1]}", fields=dict(fields))


class Unauthorized(http_errors.Unauthorized):
    HEADERS: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": 'Bearer realm="sendmill-control"'}

    def __init__(self, message: str = "authentication required", **extra: Any) -> None:
        super().__init__(message, **extra)


class InvalidToken(Unauthorized):
    error_code = "invalid_token"


class TotpRequired(Unauthorized):
    error_code = "totp_required"


class Forbidden(ControlError):
    status = 403
    error_code = "permission_denied"


class MfaRequired(Forbidden):
    error_code = "mfa_required"


class NotFound(http_errors.NotFound):
    """Also the answer for another company's ids: their existence is not revealed."""

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


class TooManyRequests(ControlError):
    status = 429
    error_code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, retry_after=seconds)
        self.headers["Retry-After"] = str(seconds)


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
    common = common_error(exc, "the database is unavailable; try again later")
    if common is not None:
        return common
    mapped = _campaign_rule(exc) or _sending_domain(exc)
    if mapped is not None:
        return mapped[0], mapped[1], {}
    if isinstance(exc, ContentCheckTimeout):
        details = {"time_limit_s": exc.time_limit}
        return 422, error_json("content_too_complex", str(exc), details), {}
    if isinstance(exc, asyncpg.QueryCanceledError):
        # a statement timeout: segment previews bound themselves (control/segments.py)
        message = "the query took too long; narrow it down and try again"
        return 503, error_json("query_timeout", message, {}), {"Retry-After": "5"}
    if isinstance(exc, asyncpg.UniqueViolationError):
        field = UNIQUE_FIELDS.get(exc.constraint_name or "", "")
        message = f"{field} is already in use" if field else "the record already exists"
        return 409, error_json("duplicate", message, {"field": field} if field else {}), {}
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return 422, error_json("invalid_reference", "a referenced record does not exist", {}), {}
    if isinstance(exc, asyncpg.DataError | asyncpg.CheckViolationError):
        # Values our validation let through but PostgreSQL refuses (out-of-range numbers...).
        return 422, error_json("validation_failed", f"invalid value: {exc}", {}), {}
    log.error("unhandled error in request %s", request_id, exc_info=exc)
    return 500, error_json("internal_error", "internal error", {"request_id": request_id}), {}


def _sending_domain(exc: BaseException) -> tuple[int, dict[str, Any]] | None:
    """mta's sending-domain refusals (mta/sending_domains.py) as responses."""
    message = str(exc)
    if isinstance(exc, sd.DomainNotFound):
        return 404, error_json("not_found", message, {})
    if isinstance(exc, sd.DomainTaken):
        return 409, error_json("domain_taken", message, {})
    if isinstance(exc, sd.NotManaged):
        return 409, error_json("domain_in_config", message, {})
    if isinstance(exc, sd.InvalidDomain):
        return 422, error_json("validation_failed", message, {"fields": {"domain": message}})
    return None


def _campaign_rule(exc: BaseException) -> tuple[int, dict[str, Any]] | None:
    """The campaign rules' exceptions (control/campaign_status.py, pure code) as responses."""
    message = str(exc)
    if isinstance(exc, cs.TransitionNotAllowed):
        transition = {"current": exc.current, "target": exc.target, "allowed": list(exc.allowed)}
        return 409, error_json("invalid_transition", message, transition)
    if isinstance(exc, cs.ApprovalRequired):
        approval = {"approval_status": exc.status, "rejection_reason": exc.rejection_reason}
        return 409, error_json("approval_required", message, approval)
    if isinstance(exc, cs.SelfApprovalRefused):
        return 403, error_json("self_approval", message, {})
    if isinstance(exc, cs.ApprovalPermissionDenied):
        return 403, error_json("permission_denied", message, {"permission": "campaigns:approve"})
    if isinstance(exc, cs.NotPendingApproval):
        return 409, error_json("not_pending_approval", message, {"approval_status": exc.status})
    if isinstance(exc, cs.RejectionReasonMissing):
        return 422, error_json("validation_failed", message, {"fields": {"reason": message}})
    if isinstance(exc, cs.ScheduleRejected):
        problems = [{"code": p.code, "message": p.message, **p.details} for p in exc.problems]
        return 422, error_json("schedule_rejected", message, {"problems": problems})
    if isinstance(exc, cs.SettingsError):
        return 422, error_json("invalid_settings", message, {})
    return None
