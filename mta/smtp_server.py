"""Inbound SMTP: submission (STARTTLS and implicit TLS) and the bounce (return-path) listener.

aiosmtpd speaks the protocol; policy lives in `SubmissionHandler`'s hooks. Never an open relay:
only an authenticated client may send anywhere, and only From domains its company owns; an
unauthenticated client may only reach VERP addresses of the bounce domain, whose mail is stored
for the bounce processor. A 250 after DATA means the message is committed to the database.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import time
from email.utils import formatdate

import asyncpg
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from mta import metrics, queue, replies
from mta.config import Config, parse_hostport
from mta.credentials import Credential, CredentialStore
from mta.inbound import store_inbound
from mta.submission import SubmissionError, SubmissionPolicy
from mta.tls import ensure_self_signed, server_context, tls_paths
from mta.verp import Verp, VerpError

log = logging.getLogger("sendmill.smtp")

# aiosmtpd's own texts, replaced by ours (with enhanced status codes); its 552 replies are
# replaced per listener with the size limit.
_REWRITES = {"500 Line too long (see RFC5321 4.5.3.1.6)": replies.S500_LINE_TOO_LONG}
_AUTH_FAILURE_DELAY = 0.5  # seconds: slows password guessing without holding much


def _is_loopback(peer: object) -> bool:
    try:
        return ipaddress.ip_address(peer[0]).is_loopback  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return False


def reply_for(exc: Exception) -> str:
    """The one place where errors become SMTP replies."""
    if isinstance(exc, SubmissionError):
        return exc.smtp_reply
    if isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError | TimeoutError):
        return replies.S451_QUEUE_UNAVAILABLE
    return "451 4.3.0 Internal error; try again later"


class SubmissionHandler:
    """aiosmtpd handler hooks carrying Sendmill's policy."""

    def __init__(
        self,
        config: Config,
        db: asyncpg.Pool,
        policy: SubmissionPolicy,
        verp: Verp,
        listener: str,
    ) -> None:
        self._config = config
        self._db = db
        self._policy = policy
        self._verp = verp
        self.listener = listener
        self.in_flight = 0

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        credential: Credential | None = session.auth_data if session.authenticated else None
        if credential is not None:
            try:
                await self._policy.check_sender(credential, address)
            except Exception as exc:
                return reply_for(exc)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return replies.S250_SENDER_OK

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if session.authenticated:
            try:
                self._policy.check_recipient(address, len(envelope.rcpt_tos))
            except SubmissionError as exc:
                return reply_for(exc)
        else:
            # Unauthenticated: only a VERP address of the bounce domain. Anything else,
            # including %-hacks, source routes and quoted tricks, is refused.
            if not self._verp.is_bounce_domain(address):
                return replies.S550_NO_RELAY
            try:
                recipient_id = self._verp.decode(address)
            except VerpError:
                return replies.S550_NO_SUCH_USER
            if not hasattr(envelope, "verp_ids"):
                envelope.verp_ids = {}  # type: ignore[attr-defined]
            envelope.verp_ids[address] = recipient_id  # type: ignore[attr-defined]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return replies.S250_RECIPIENT_OK

    def _received(self, server: SMTP, session: Session) -> bytes:
        """RFC 5321 §4.4 trace header."""
        protocol = "ESMTP"
        if session.ssl is not None:
            protocol += "S"
        if session.authenticated:
            protocol += "A"
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        helo = (session.host_name or "unknown").replace("\r", "").replace("\n", "")[:255]
        return (
            f"Received: from {helo} ([{peer}])\r\n\tby {self._config.hostname} "
            f"(Sendmill) with {protocol};\r\n\t{formatdate(localtime=False)}\r\n"
        ).encode()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_flight += 1
        try:
            body = self._received(server, session) + (envelope.original_content or b"")
            if session.authenticated:
                return await self._submit(session.auth_data, envelope, body)
            return await self._store_bounces(envelope, body)
        finally:
            self.in_flight -= 1

    async def _submit(self, credential: Credential, envelope: Envelope, body: bytes) -> str:
        try:
            submission = await self._policy.prepare(
                credential, envelope.mail_from or "", list(envelope.rcpt_tos), body
            )
            queued = await queue.enqueue(self._db, submission, self._config.delivery.max_age)
        except Exception as exc:
            reply = reply_for(exc)
            if not isinstance(exc, SubmissionError):
                log.warning("submission not queued: %s", exc)
            metrics.SMTP_MESSAGES_IN.labels(self.listener, reply[:1] + "xx").inc()
            return reply
        metrics.SMTP_MESSAGES_IN.labels(self.listener, "accepted").inc()
        metrics.RECIPIENTS_QUEUED.labels("smtp").inc(len(queued))
        return replies.S250_QUEUED.format(ids=",".join(str(q.id) for q in queued))

    async def _store_bounces(self, envelope: Envelope, body: bytes) -> str:
        ids = getattr(envelope, "verp_ids", {})
        try:
            for rcpt in envelope.rcpt_tos:
                await store_inbound(self._db, ids.get(rcpt), envelope.mail_from or "", rcpt, body)
        except Exception as exc:
            metrics.SMTP_MESSAGES_IN.labels(self.listener, "4xx").inc()
            return reply_for(exc)
        metrics.SMTP_MESSAGES_IN.labels(self.listener, "accepted").inc()
        return replies.S250_OK


class SendmillSMTP(SMTP):
    """aiosmtpd's protocol with asynchronous AUTH against the credential store, our reply
    texts, and AUTH without TLS allowed from loopback when the config says so (development)."""

    def __init__(
        self,
        handler: SubmissionHandler,
        credentials: CredentialStore,
        size_limit: int,
        allow_plain_loopback: bool,
        sessions: set[SendmillSMTP],
        **kwargs: object,
    ) -> None:
        super().__init__(handler, data_size_limit=size_limit, **kwargs)  # type: ignore[arg-type]
        self._credentials = credentials
        self._allow_plain_loopback = allow_plain_loopback
        self._sessions = sessions
        self._too_big = replies.S552_TOO_BIG.format(limit=size_limit)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = not hasattr(self, "_seen")
        self._seen = True
        super().connection_made(transport)
        if first:
            self._sessions.add(self)
            metrics.SMTP_SESSIONS_IN.labels(self.event_handler.listener).inc()
            if self._allow_plain_loopback and _is_loopback(transport.get_extra_info("peername")):
                self._auth_require_tls = False

    def connection_lost(self, exc: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(exc)

    async def push(self, status: str) -> None:
        if not isinstance(status, str):  # AUTH challenges arrive as bytes
            pass
        elif status.startswith("552 Error"):  # DATA too big, or MAIL SIZE= over the limit
            status = self._too_big
        elif _REWRITES.get(status):
            status = _REWRITES[status]  # type: ignore[assignment]
        await super().push(status)

    async def _check(self, mechanism: str, login: bytes, password: bytes) -> AuthResult:
        try:
            credential = await self._credentials.verify_smtp(
                login.decode("utf-8", "replace"), password.decode("utf-8", "replace")
            )
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("AUTH check failed: %s", exc)
            await self.push("454 4.7.0 Temporary authentication failure")
            return AuthResult(success=False, handled=True)
        if credential is None:
            metrics.SMTP_AUTH.labels("failed").inc()
            await asyncio.sleep(_AUTH_FAILURE_DELAY)
            return AuthResult(success=False, handled=False)
        metrics.SMTP_AUTH.labels("ok").inc()
        return AuthResult(success=True, handled=False, auth_data=credential)

    async def auth_PLAIN(self, _: object, args: list[str]) -> AuthResult:
        if len(args) == 1:
            raw = await self.challenge_auth("")
            if raw is MISSING:
                return AuthResult(success=False)
        else:
            try:
                raw = base64.b64decode(args[1].encode(), validate=True)
            except ValueError:
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        try:
            _, login, password = raw.split(b"\x00")  # type: ignore[union-attr]
        except ValueError:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check("PLAIN", login, password)

    async def auth_LOGIN(self, _: object, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if login is MISSING:
                return AuthResult(success=False)
        else:
            try:
                login = base64.b64decode(args[1].encode(), validate=True)
            except ValueError:
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False)
        return await self._check("LOGIN", login, password)  # type: ignore[arg-type]


class SmtpListeners:
    """The daemon's inbound SMTP servers: start them, and stop them gracefully."""

    def __init__(
        self,
        config: Config,
        db: asyncpg.Pool,
        credentials: CredentialStore,
        policy: SubmissionPolicy,
        verp: Verp,
    ) -> None:
        self._config = config
        self._db = db
        self._credentials = credentials
        self._policy = policy
        self._verp = verp
        self._servers: list[asyncio.Server] = []
        self._handlers: list[SubmissionHandler] = []
        self._sessions: set[SendmillSMTP] = set()

    async def start(self) -> None:
        config = self._config
        cert, key = tls_paths(config)
        ensure_self_signed(cert, key, config.hostname)
        context = server_context(cert, key)
        smtp = config.smtp
        await self._listen("submission", smtp.listen, starttls=context, implicit=None)
        if smtp.listen_tls:
            await self._listen("submissions", smtp.listen_tls, starttls=None, implicit=context)
        if config.bounce.listen:
            await self._listen("bounce", config.bounce.listen, starttls=context, implicit=None)

    async def _listen(self, name: str, address: str, *, starttls: object, implicit: object) -> None:
        host, port = parse_hostport(address, 25, name)
        handler = SubmissionHandler(self._config, self._db, self._policy, self._verp, name)
        self._handlers.append(handler)
        smtp = self._config.smtp

        def factory() -> SendmillSMTP:
            return SendmillSMTP(
                handler,
                self._credentials,
                smtp.max_message_size,
                smtp.plaintext_auth_on_loopback,
                self._sessions,
                hostname=self._config.hostname,
                ident="Sendmill",
                tls_context=starttls,
                enable_SMTPUTF8=True,
                decode_data=False,
                timeout=smtp.timeout,
                auth_require_tls=True,
                auth_exclude_mechanism=["CRAM-MD5"],
            )

        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, host, port, ssl=implicit)
        self._servers.append(server)
        log.info("SMTP %s listening on %s:%d", name, host, port)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; let in-flight DATA transactions finish; close the rest."""
        for server in self._servers:
            server.close()
        deadline = time.monotonic() + grace
        while any(h.in_flight for h in self._handlers) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for session in list(self._sessions):
            transport = session.transport
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport.write(f"{replies.S421_SHUTTING_DOWN}\r\n".encode())
                transport.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
