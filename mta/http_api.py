"""HTTP submission API: applications send mail with an API key, as JSON or as a raw message.

    POST /api/v1/messages                    submit (JSON compose spec, or message/rfc822)
    GET  /api/v1/messages/recipients/{id}    one recipient's state, attempts and last reply
    GET  /metrics  /healthz  /readyz         Prometheus, liveness, readiness

A submission is answered 202 only after `queue.enqueue` returned, i.e. after the commit. Every
error has one shape, `{"error_code", "message", "details"}`, and exceptions become responses in
one place (`_EXCEPTION_HANDLERS`): domain code raises `SubmissionError` or `ComposeError`, this
module maps them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any, ClassVar

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mta import metrics, queue
from mta.compose import ComposeError, MessageSpec, compose
from mta.credentials import Credential, CredentialStore
from mta.http_errors import (
    DATABASE_UNAVAILABLE,
    BodyTooLarge,
    HttpError,
    InvalidJson,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
    common_error,
)
from mta.metrics_endpoint import MetricsEndpoint
from mta.submission import SubmissionError, SubmissionPolicy, normalise_line_endings
from mta.submission_options import (
    OPTION_NAMES,
    SubmissionHook,
    apply_options,
    options_from_text,
)

PRIORITIES = {"transactional": 0, "bulk": 1}
JSON_TYPE = "application/json"
RAW_TYPE = "message/rfc822"
UNAVAILABLE = "the queue is temporarily unavailable; nothing was accepted, try again later"
_MAX_BIGINT = 2**63 - 1
# After refusing a submission, up to this much of the rest of its body is read and dropped so
# the client sees the answer; a bigger remainder is cut off by closing the connection.
LINGER_BYTES = 4 * 1024 * 1024

Ready = Callable[[], Awaitable[bool]]
# Called on every JSON submission with the client's `tracking` option (None when absent) after
# the policy accepted it; returns the submission to queue (the tracker seals its decision into
# the body). The daemon passes tracker's; mta itself knows nothing of tracking.


# --- errors -----------------------------------------------------------------------------------


class InvalidApiKey(Unauthorized):
    error_code = "invalid_api_key"
    HEADERS: ClassVar[Mapping[str, str]] = {
        "WWW-Authenticate": 'Bearer realm="sendmill", error="invalid_token"'
    }


@dataclass(frozen=True, slots=True)
class ErrorBody:
    status: int
    error_code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] | None = None

    def closing(self) -> ErrorBody:
        return replace(self, headers={**(self.headers or {}), "Connection": "close"})

    def response(self) -> Response:
        content = {"error_code": self.error_code, "message": self.message, "details": self.details}
        # ASCII JSON: an error may echo client text (a field name), lone surrogates included,
        # which UTF-8 cannot encode; \u escapes can.
        return Response(
            json.dumps(content, ensure_ascii=True, separators=(",", ":")),
            status_code=self.status,
            headers=self.headers,
            media_type=JSON_TYPE,
        )


def describe(exc: Exception) -> ErrorBody:
    """The one mapping from an exception to the error a client sees."""
    if isinstance(exc, SubmissionError):
        return ErrorBody(exc.http_status, exc.error_code, str(exc))
    if isinstance(exc, ComposeError):
        return ErrorBody(422, "invalid_field", exc.message, {"field": exc.field})
    common = common_error(exc, UNAVAILABLE)
    if common is not None:
        status, body, headers = common
        return ErrorBody(status, body["error_code"], body["message"], body["details"], headers)
    return ErrorBody(500, "internal_error", "internal server error")


async def _error_response(request: Request, exc: Exception) -> Response:
    error = describe(exc)
    upload: Upload | None = getattr(request.state, "upload", None)
    if upload is not None:  # a submission: count it, and settle what is left of its body
        metrics.HTTP_SUBMISSIONS.labels(error.error_code).inc()
        if not await upload.discard_rest():
            error = error.closing()
    return error.response()


# Exception (and 500) goes to Starlette's ServerErrorMiddleware, which also logs the traceback.
_EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    exc_type: _error_response
    for exc_type in (
        HttpError,
        SubmissionError,
        ComposeError,
        HTTPException,
        ClientDisconnect,
        *DATABASE_UNAVAILABLE,
        Exception,
    )
}


# --- request helpers --------------------------------------------------------------------------


def _api_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return request.headers.get("x-api-key") or None


async def authenticate(request: Request, credentials: CredentialStore) -> Credential:
    """The API key's credential (Bearer or X-Api-Key); Unauthorized / InvalidApiKey otherwise.
    Public: routes other packages mount on this API (bounce's suppressions) use it too."""
    key = _api_key(request)
    if key is None:
        raise Unauthorized("an API key is required: 'Authorization: Bearer sm_...' or X-Api-Key")
    credential = await credentials.verify_api_key(key)
    if credential is None:
        raise InvalidApiKey("the API key is invalid or revoked")
    return credential


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


class Upload:
    """Reads a request body up to a limit, and knows what is still unread when refusing.

    A declared Content-Length over the limit is refused before reading anything (a client
    that sent `Expect: 100-continue` then never uploads); a chunked body is read only up to
    the limit. Nothing past the limit is buffered.
    """

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        length = request.headers.get("content-length", "")
        self.declared = int(length) if length.isdigit() else None
        self.received = 0
        self.complete = False

    async def read(self, limit: int) -> bytes:
        if self.declared is not None and self.declared > limit:
            raise BodyTooLarge(limit)
        chunks: list[bytes] = []
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.complete = True
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            self.received += len(chunk)
            self.complete = not message.get("more_body", False)
            if self.received > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def discard_rest(self) -> bool:
        """After a refusal, read and drop up to LINGER_BYTES of what the client is still
        sending, so that it reads our answer rather than a connection reset (RFC 9112 §9.6).
        False when more is left: the response must then close the connection."""
        if self.complete:
            return True
        if self.declared is not None and self.declared - self.received > LINGER_BYTES:
            return False
        budget = LINGER_BYTES
        while True:
            message = await self._receive()
            if message["type"] != "http.request":
                return False
            budget -= len(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete = True
                return True
            if budget < 0:
                return False


def _priority(value: Any, where: str) -> int:
    if value is None:
        return PRIORITIES["transactional"]
    if not isinstance(value, str) or value not in PRIORITIES:
        raise ComposeError(where, "must be one of " + ", ".join(repr(p) for p in PRIORITIES))
    return PRIORITIES[value]


def _query_options(request: Request) -> dict[str, Any]:
    """The JSON options of a raw submission, from its query string:
    `?category=marketing&campaign_id=7&list_id=3&tracking=opens,clicks` (`tracking=none`)."""
    query = request.query_params
    return options_from_text({name: query[name] for name in OPTION_NAMES if name in query})


def _strip_bcc(body: bytes) -> bytes:
    """Remove Bcc header fields (and their continuation lines) from a raw message's header."""
    head, separator, rest = body.partition(b"\r\n\r\n")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):  # a new field starts; folded lines follow their field
            dropping = line.partition(b":")[0].strip().lower() == b"bcc"
        if not dropping:
            kept.append(line)
    return b"\r\n".join(kept) + separator + rest


def _header_recipients(body: bytes) -> list[str]:
    """Recipients from To, Cc and Bcc when the client gave none (like `sendmail -t`)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(body)
    values = [str(v) for name in ("to", "cc", "bcc") for v in headers.get_all(name, [])]
    recipients: list[str] = []
    seen: set[str] = set()
    for _, address in getaddresses(values):
        if address and address.lower() not in seen:
            seen.add(address.lower())
            recipients.append(address)
    return recipients


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- endpoints --------------------------------------------------------------------------------


class Messages:
    """Submission and status lookups for one company's API keys."""

    def __init__(
        self,
        db: asyncpg.Pool,
        credentials: CredentialStore,
        policy: SubmissionPolicy,
        max_age: float,
        max_body_size: int,
        prepare: SubmissionHook | None = None,
    ) -> None:
        self.db = db
        self.prepare = prepare
        self.credentials = credentials
        self.policy = policy
        self.max_age = max_age
        self.max_body_size = max_body_size

    async def submit(self, request: Request) -> Response:
        upload = request.state.upload = Upload(request)  # marks a submission for the handler
        credential = await authenticate(request, self.credentials)
        media_type = _media_type(request)
        if media_type == JSON_TYPE:
            read = self._from_json
        elif media_type == RAW_TYPE:
            read = self._from_raw
        else:
            raise UnsupportedMediaType(
                f"Content-Type must be {JSON_TYPE} or {RAW_TYPE}", content_type=media_type
            )
        body = await upload.read(self.max_body_size)
        submission = await read(request, credential, body)
        rows = await queue.enqueue(self.db, submission, self.max_age)
        metrics.HTTP_SUBMISSIONS.labels("accepted").inc()
        metrics.RECIPIENTS_QUEUED.labels("http").inc(len(rows))
        return JSONResponse(
            {
                "message_id": submission.message_id,
                "recipients": [
                    {"email": row.recipient, "id": row.id, "state": row.state} for row in rows
                ],
            },
            status_code=202,
        )

    async def _from_json(
        self, request: Request, credential: Credential, body: bytes
    ) -> queue.Submission:
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidJson(
                f"the body is not valid JSON: {exc.msg}", line=exc.lineno, column=exc.colno
            ) from None
        except UnicodeDecodeError:
            raise InvalidJson("the body is not valid UTF-8") from None
        except RecursionError:
            raise InvalidJson("the JSON is nested too deeply") from None
        priority = PRIORITIES["transactional"]
        options: dict[str, Any] = {}
        if isinstance(obj, dict):
            obj = dict(obj)
            priority = _priority(obj.pop("priority", None), "priority")
            options = {k: obj.pop(k) for k in OPTION_NAMES if k in obj}
        spec = MessageSpec.from_json(obj)
        message = compose(spec, self.policy.hostname)
        submission = await self.policy.prepare(
            credential, spec.from_.email, spec.recipients, message, priority=priority
        )
        return await self._with_options(credential, submission, options)

    async def _with_options(
        self, credential: Credential, submission: queue.Submission, options: dict[str, Any]
    ) -> queue.Submission:
        return await apply_options(credential, submission, options, self.prepare)

    async def _from_raw(
        self, request: Request, credential: Credential, body: bytes
    ) -> queue.Submission:
        priority = _priority(request.query_params.get("priority"), "priority")
        options = _query_options(request)
        body = normalise_line_endings(body)
        recipients = request.query_params.getlist("to") or _header_recipients(body)
        # Bcc is for the envelope only (RFC 5322 §3.6.3); Postfix removes it the same way.
        body = _strip_bcc(body)
        mail_from = request.query_params.get("from", "")
        submission = await self.policy.prepare(
            credential, mail_from, recipients, body, priority=priority
        )
        return await self._with_options(credential, submission, options)

    async def recipient(self, request: Request) -> Response:
        credential = await authenticate(request, self.credentials)
        recipient_id = request.path_params["id"]
        status = None
        if recipient_id <= _MAX_BIGINT:
            status = await queue.recipient_status(self.db, recipient_id, credential.company_id)
        if status is None:
            raise NotFound(f"no recipient {recipient_id} in this account", id=recipient_id)
        return JSONResponse(
            {
                "id": status["id"],
                "email": status["recipient"],
                "state": status["state"],
                "attempts": status["attempts"],
                "last_reply": status["last_reply"],
                "last_mx": status["last_mx"],
                "next_attempt_at": _iso(status["next_attempt_at"]),
                "created_at": _iso(status["created_at"]),
                "finished_at": _iso(status["finished_at"]),
                "history": [
                    {
                        "at": _iso(a["at"]),
                        "mx": a["mx"],
                        "code": a["code"],
                        "reply": a["reply"],
                        "outcome": a["outcome"],
                        "duration_ms": a["duration_ms"],
                    }
                    for a in status["attempts_log"]
                ],
            }
        )


class Health:
    """Liveness (the process answers) and readiness (the daemon says it can take mail)."""

    def __init__(self, db: asyncpg.Pool, ready: Ready | None) -> None:
        self.db = db
        self.ready = ready or self._database_answers

    async def _database_answers(self) -> bool:
        await self.db.fetchval("SELECT 1")
        return True

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        try:
            ready = await self.ready()
        except Exception:  # a failing check means "not ready", never a 500
            ready = False
        if not ready:
            return ErrorBody(503, "not_ready", "sendmill is not ready to accept mail").response()
        return JSONResponse({"status": "ready"})


def create_app(
    *,
    db: asyncpg.Pool,
    credentials: CredentialStore,
    policy: SubmissionPolicy,
    max_age: float,
    max_body_size: int,
    ready: Ready | None = None,
    prepare: SubmissionHook | None = None,
    mounts: Sequence[BaseRoute] = (),
    metrics_token: str | None = None,
) -> Starlette:
    """The HTTP API app. `ready` is the readiness check; without one, the database must answer.
    `prepare` is the submission hook (tracking), when the daemon has one; `mounts` are other
    packages' routes the daemon adds (bounce webhooks)."""
    messages = Messages(db, credentials, policy, max_age, max_body_size, prepare)
    health = Health(db, ready)
    routes = [
        Route("/api/v1/messages", messages.submit, methods=["POST"]),
        Route("/api/v1/messages/recipients/{id:int}", messages.recipient, methods=["GET"]),
        Route("/metrics", MetricsEndpoint(metrics_token).get, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        *mounts,
    ]
    return Starlette(routes=routes, exception_handlers=_EXCEPTION_HANDLERS)
