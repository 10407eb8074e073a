"""Inbound SMTP: submission (STARTTLS and implicit TLS) and the bounce (return-path) listener.

aiosmtpd speaks the protocol; Sendmill's policy lives in `SubmissionHandler`'s hooks. Never an
open relay: only an authenticated client may send anywhere, and only From domains its company
owns; an unauthenticated client may only reach VERP addresses of the bounce domain, whose mail
is stored for the bounce processor. A 250 after DATA means the message is committed.

    listeners = SmtpListeners(config, db, CredentialStore(db), policy, verp)
    await listeners.start()
    ...
    await listeners.stop(grace=30)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import ipaddress
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import asyncpg
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from mta import metrics, queue, replies
from mta.compose import ComposeError
from mta.config import Config, parse_hostport
from mta.credentials import CredentialStore
from mta.inbound import store_inbound
from mta.submission import BadAddress, RelayDenied, SubmissionError, SubmissionPolicy
from mta.submission_options import (
    SubmissionHook,
    apply_options,
    options_from_text,
    pop_option_headers,
)
from mta.tls import ensure_self_signed, server_context, tls_paths
from mta.verp import Verp, VerpError

log = logging.getLogger("sendmill.smtp")

AUTH_FAILURE_DELAY = 0.5  # seconds after a failed AUTH: slows password guessing, holds little
MAX_AUTH_FAILURES = 3  # failed AUTH attempts before the session is closed with a 421
MAX_REPLY_LINE = 510  # RFC 5321 §4.5.3.1.5: 512 octets per reply line, CRLF included
_UNAVAILABLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)  # OSError: timeouts too


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening socket and what it offers."""

    name: str  # metrics label: submission | submissions | bounce
    address: str
    default_port: int
    implicit_tls: bool = False
    offers_auth: bool = True


def listeners_for(config: Config) -> list[Listener]:
    found = [Listener("submission", config.smtp.listen, 587)]
    if config.smtp.listen_tls:
        found.append(Listener("submissions", config.smtp.listen_tls, 465, implicit_tls=True))
    if config.bounce.listen:
        # The public MX of the bounce domain: DSNs arrive here, submissions do not.
        found.append(Listener("bounce", config.bounce.listen, 25, offers_auth=False))
    return found


POSTMASTER = "postmaster"  # RFC 5321 §4.5.1: case-insensitive


def reply_for(exc: Exception) -> str:
    """The one place where a refusal or a failure becomes an SMTP reply."""
    if isinstance(exc, SubmissionError):
        return exc.smtp_reply
    if isinstance(exc, ComposeError):  # a bad X-Sendmill-* option
        return replies.S554_BAD_OPTION.format(reason=str(exc))
    if isinstance(exc, _UNAVAILABLE):
        log.warning("SMTP intake: database unavailable: %s", exc)
        return replies.S451_QUEUE_UNAVAILABLE
    log.error("SMTP intake: unexpected error", exc_info=exc)
    return replies.S451_INTERNAL_ERROR


def queued_reply(ids: list[int]) -> str:
    reply = replies.S250_QUEUED.format(ids=",".join(map(str, ids)))
    if len(reply) <= MAX_REPLY_LINE:
        return reply
    return replies.S250_QUEUED_MANY.format(first=ids[0], more=len(ids) - 1)


def received_header(hostname: str, session: Session, envelope: Envelope) -> bytes:
    """The trace header we add (RFC 5321 §4.4); protocol names per RFC 3848 and RFC 6531."""
    helo = re.sub(r"[^A-Za-z0-9.:_\[\]-]", "?", session.host_name or "")[:255] or "unknown"
    protocol = "SMTP"
    if session.extended_smtp:
        protocol = "UTF8SMTP" if envelope.smtp_utf8 else "ESMTP"
        protocol += "S" if session.ssl is not None else ""
        trusted = getattr(session, "sendmill_trusted_network", False)
        protocol += "A" if session.authenticated and not trusted else ""
    return (
        f"Received: from {helo} ({_address_literal(session.peer)})\r\n"
        f"\tby {hostname} (Sendmill) with {protocol};\r\n"
        f"\t{format_datetime(datetime.now(UTC))}\r\n"
    ).encode()


def _address_literal(peer: object) -> str:
    try:
        ip = ipaddress.ip_address(peer[0])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return "unknown"
    return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"


def _is_loopback(peer: object) -> bool:
    try:
        return ipaddress.ip_address(peer[0]).is_loopback  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return False


def _sender(mail_from: str | None) -> str:
    """The envelope sender as stored: aiosmtpd gives the null reverse-path as "<>"."""
    return "" if mail_from in (None, "<>") else mail_from


class SubmissionHandler:
    """aiosmtpd hooks carrying Sendmill's policy, for one listener."""

    def __init__(
        self,
        listener: Listener,
        db: asyncpg.Pool,
        policy: SubmissionPolicy,
        verp: Verp,
        hostname: str,
        max_age: float,
        trusted_networks: tuple[str, ...] = (),
        accepts: Callable[[str], bool] | None = None,
        prepare: SubmissionHook | None = None,
    ) -> None:
        self.listener = listener
        self._db = db
        self._policy = policy
        self._verp = verp
        self._hostname = hostname
        self._max_age = max_age
        self._trusted = [ipaddress.ip_network(n) for n in trusted_networks]
        # Other addresses of the bounce domain someone takes mail for (the bounce processor's
        # complaint and mailto: unsubscribe addresses), besides VERP return paths.
        self._accepts = accepts
        self._prepare = prepare

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, lines: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not self.listener.offers_auth:
            lines = [line for line in lines if not line.startswith("250-AUTH")]
        else:
            # RFC 2920: aiosmtpd reads one command at a time from its buffer and answers each
            # in order, and drops what was pipelined behind STARTTLS (RFC 3207 §4.2).
            lines = [*lines[:-1], "250-PIPELINING", lines[-1]]
        # Every reply of ours carries an RFC 3463 code (SendmillSMTP.push sees to aiosmtpd's).
        return [*lines[:-1], "250-ENHANCEDSTATUSCODES", lines[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if not address.isprintable():  # control characters, NUL, undecodable bytes
            raise BadAddress()
        if self._on_trusted_network(session):
            # No AUTH, but a host the operator trusts: the sender's domain names the company.
            session.auth_data = await self._policy.trusted_network_sender(_sender(address))
            session.authenticated = True
            session.sendmill_trusted_network = True  # type: ignore[attr-defined]
        elif session.authenticated:
            await self._policy.check_sender(session.auth_data, _sender(address))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return replies.S250_SENDER_OK

    def _on_trusted_network(self, session: Session) -> bool:
        if getattr(session, "sendmill_trusted_network", False):
            return True
        if session.authenticated or not self.listener.offers_auth or not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(session.peer[0])  # type: ignore[index]
        except (TypeError, ValueError, IndexError):
            return False
        return any(ip in network for network in self._trusted)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if not address.isprintable():
            raise BadAddress()
        if not session.authenticated:
            self._check_bounce_recipient(address)
        self._policy.check_recipient(address, len(envelope.rcpt_tos))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return replies.S250_RECIPIENT_OK

    def _check_bounce_recipient(self, address: str) -> None:
        """Unauthenticated: only a VERP address that verifies, or postmaster. %-hacks, source
        routes (which aiosmtpd drops) and quoted local parts all fail one of these checks."""
        if not self._verp.is_bounce_domain(address):
            raise RelayDenied()
        if address.rpartition("@")[0].lower() == POSTMASTER:
            return  # RFC 5321 §4.5.1: a domain that takes mail takes it for its postmaster
        try:
            self._verp.decode(address)
        except VerpError:
            if self._accepts is None or not self._accepts(address):
                raise SubmissionError(smtp_reply=replies.S550_NO_SUCH_USER) from None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            reply = await self._accept(session, envelope)
        except Exception as exc:  # every failure must become a reply
            reply = reply_for(exc)
        result = "accepted" if reply.startswith("2") else reply[0] + "xx"
        metrics.SMTP_MESSAGES_IN.labels(self.listener.name, result).inc()
        return reply

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # aiosmtpd hangs up without a reply
            log.info("STARTTLS handshake failed: %s", error.__cause__)
            return replies.S454_TLS_FAILED
        return reply_for(error)

    async def _accept(self, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        trace = received_header(self._hostname, session, envelope)
        if not session.authenticated:
            return await self._store_bounces(envelope, trace + content)
        submission = await self._policy.prepare(
            session.auth_data, _sender(envelope.mail_from), list(envelope.rcpt_tos), content
        )
        # X-Sendmill-* fields carry what HTTP clients send as options; they are not mail.
        values, body = pop_option_headers(submission.body)
        submission = dataclasses.replace(submission, body=trace + body)
        options = options_from_text(values)
        submission = await apply_options(session.auth_data, submission, options, self._prepare)
        queued = await queue.enqueue(self._db, submission, self._max_age)
        metrics.RECIPIENTS_QUEUED.labels("smtp").inc(len(queued))
        return queued_reply([q.id for q in queued])

    async def _store_bounces(self, envelope: Envelope, body: bytes) -> str:
        # One transaction: a 451 must leave nothing behind for the sender's retry to duplicate.
        async with self._db.acquire() as conn, conn.transaction():
            for rcpt in envelope.rcpt_tos:
                try:
                    recipient_id: int | None = self._verp.decode(rcpt)
                except VerpError:  # an address `accepts` took: it names no recipient row
                    recipient_id = None
                await store_inbound(conn, recipient_id, _sender(envelope.mail_from), rcpt, body)
        return replies.S250_OK


# aiosmtpd answers protocol errors itself, without RFC 3463 codes. Its texts that matter get
# ours; the rest get a detail code by reply code. (Greeting, EHLO and 354 lines are left alone.)
_AIOSMTPD_TEXTS = {
    "250 OK": replies.S250_OK,
    "221 Bye": replies.S221_BYE,
    "220 Ready to start TLS": replies.S220_STARTTLS,
    "500 Error: bad syntax": replies.S500_SYNTAX,
    "500 Command line too long": replies.S500_LINE_TOO_LONG,
    "500 Line too long (see RFC5321 4.5.3.1.6)": replies.S500_LINE_TOO_LONG,
    "503 Error: need MAIL command": replies.S503_NEED_MAIL,
    "503 Error: need RCPT command": replies.S503_NO_RECIPIENTS,
    "503 Error: nested MAIL command": replies.S503_NESTED_MAIL,
}
_DETAIL_CODES = {
    "252": "2.5.0",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "555": "5.5.4",
}
_HAS_DETAIL = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\b")


class _Phase(enum.Enum):
    COMMANDS = enum.auto()  # may be closed at once when the listeners stop
    DATA = enum.auto()  # DATA sent, reply pending: allowed to finish when the listeners stop
    LAST_DATA = enum.auto()  # as DATA, and the listeners are stopping: 421 after the reply
    CLOSED = enum.auto()


class SendmillSMTP(SMTP):
    """aiosmtpd's protocol for one connection, with AUTH checked against the credential store
    (asynchronously), our reply texts, and a shutdown that lets a DATA transaction finish."""

    def __init__(
        self,
        handler: SubmissionHandler,
        credentials: CredentialStore,
        sessions: SessionTable,
        *,
        plaintext_auth_on_loopback: bool,
        **kwargs: object,
    ) -> None:
        # A DATA line may be as long as the message: lines over 998 characters are re-encoded
        # (mta/long_lines.py), not refused. aiosmtpd sizes its stream buffer from this.
        self.line_length_limit = max(SMTP.line_length_limit, int(kwargs["data_size_limit"]))  # type: ignore[call-overload]
        super().__init__(handler, authenticator=_decoded_login, **kwargs)  # type: ignore[arg-type]
        self.listener = handler.listener
        self._credentials = credentials
        self._sessions = sessions
        self._plaintext_auth_on_loopback = plaintext_auth_on_loopback
        self._too_big = replies.S552_TOO_BIG.format(limit=self.data_size_limit)
        self._phase = _Phase.COMMANDS
        self._auth_failures = 0
        self.finished: asyncio.Future[None] = self.loop.create_future()

    # --- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        after_starttls = self._original_transport is not None
        super().connection_made(transport)
        if after_starttls:
            return
        if transport.get_extra_info("sslcontext") is not None:  # implicit TLS (RFC 8314)
            self.session.ssl = {"cipher": transport.get_extra_info("cipher")}
        elif self._plaintext_auth_on_loopback and _is_loopback(self.session.peer):
            self._auth_require_tls = False  # development; aiosmtpd's switch is per server
        metrics.SMTP_SESSIONS_IN.labels(self.listener.name).inc()
        self._sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._phase = _Phase.CLOSED
        self._sessions.discard(self)
        if not self.finished.done():
            self.finished.set_result(None)
        super().connection_lost(error)

    def shut_down(self, *, now: bool = False) -> None:
        """The listeners are stopping: 421 and close, unless a DATA transaction may finish."""
        if self._phase in (_Phase.DATA, _Phase.LAST_DATA) and not now:
            self._phase = _Phase.LAST_DATA
            return
        self._phase = _Phase.CLOSED
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"{replies.S421_SHUTTING_DOWN}\r\n".encode())
            if now:
                self.transport.abort()
            else:
                self.transport.close()

    # --- commands --------------------------------------------------------------------------

    async def smtp_AUTH(self, arg: str) -> None:
        if not self.listener.offers_auth:
            await self.push(replies.S502_AUTH_NOT_OFFERED)
            return
        if self.envelope is not None and self.envelope.mail_from:  # RFC 4954 §4
            await self.push(replies.S503_AUTH_IN_TRANSACTION)
            return
        await super().smtp_AUTH(arg)
        if self._auth_failures >= MAX_AUTH_FAILURES and self.transport is not None:
            # A password guesser gets a few tries per connection, then has to reconnect.
            self._phase = _Phase.CLOSED
            self.transport.close()

    async def smtp_DATA(self, arg: str) -> None:
        self._phase = _Phase.DATA
        try:
            await super().smtp_DATA(arg)
        finally:
            stopping = self._phase is _Phase.LAST_DATA
            if self._phase is not _Phase.CLOSED:
                self._phase = _Phase.COMMANDS
        if stopping:
            self.shut_down()

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, str):  # AUTH challenges arrive as bytes
            status = self._ours(status)
        await super().push(status)

    def _ours(self, status: str) -> str:
        if status in _AIOSMTPD_TEXTS:
            return _AIOSMTPD_TEXTS[status]
        if status.startswith("552 Error"):  # MAIL SIZE= over the limit, or DATA too big
            return self._too_big
        code, _, text = status.partition(" ")
        if code in _DETAIL_CODES and not _HAS_DETAIL.match(text):
            return f"{code} {_DETAIL_CODES[code]} {text.removeprefix('Error: ')}"
        return status

    # --- AUTH PLAIN and LOGIN: aiosmtpd decodes, the credential store decides ---------------

    async def auth_PLAIN(self, _: object, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: object, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_LOGIN(_, args))

    async def _verify(self, decoded: AuthResult) -> AuthResult:
        login = decoded.auth_data
        if not isinstance(login, LoginPassword):
            return decoded  # not decodable, or aborted: aiosmtpd has replied
        try:
            credential = await self._credentials.verify_smtp(
                login.login.decode("utf-8", "replace"), login.password.decode("utf-8", "replace")
            )
        except _UNAVAILABLE as exc:
            log.warning("AUTH not checked: %s", exc)
            metrics.SMTP_AUTH.labels("error").inc()
            return AuthResult(success=False, handled=False, message=replies.S454_AUTH_UNAVAILABLE)
        if credential is None:
            metrics.SMTP_AUTH.labels("failed").inc()
            self._auth_failures += 1
            await asyncio.sleep(AUTH_FAILURE_DELAY)
            if self._auth_failures >= MAX_AUTH_FAILURES:
                return AuthResult(
                    success=False, handled=False, message=replies.S421_TOO_MANY_AUTH_FAILURES
                )
            return AuthResult(success=False, handled=False, message=replies.S535_AUTH_FAILED)
        metrics.SMTP_AUTH.labels("ok").inc()
        return AuthResult(success=True, auth_data=credential, message=replies.S235_AUTH_OK)


def _decoded_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, login: LoginPassword
) -> AuthResult:
    """aiosmtpd's authenticator is synchronous; hand the decoded login to `_verify`."""
    return AuthResult(success=False, handled=False, auth_data=login)


class SessionTable:
    """Open sessions, so that stopping can let DATA transactions finish and close the rest."""

    def __init__(self) -> None:
        self._open: set[SendmillSMTP] = set()
        self.stopping = False

    def __len__(self) -> int:
        return len(self._open)

    def add(self, session: SendmillSMTP) -> None:
        self._open.add(session)
        if self.stopping:  # a TLS handshake that completed after stop() began
            session.shut_down()

    def discard(self, session: SendmillSMTP) -> None:
        self._open.discard(session)

    def shut_down(self, *, now: bool = False) -> None:
        self.stopping = True
        for session in list(self._open):
            session.shut_down(now=now)

    async def wait_closed(self, timeout: float) -> bool:
        pending = [s.finished for s in self._open]
        if not pending:
            return True
        _, still_open = await asyncio.wait(pending, timeout=timeout)
        return not still_open


class SmtpListeners:
    """The daemon's inbound SMTP servers: start them, and stop them gracefully."""

    def __init__(
        self,
        config: Config,
        db: asyncpg.Pool,
        credentials: CredentialStore,
        policy: SubmissionPolicy,
        verp: Verp,
        accepts: Callable[[str], bool] | None = None,
        prepare: SubmissionHook | None = None,
    ) -> None:
        self._config = config
        self._db = db
        self._credentials = credentials
        self._policy = policy
        self._verp = verp
        self._accepts = accepts
        self._prepare = prepare
        self._servers: list[asyncio.Server] = []
        self._context: ssl.SSLContext | None = None
        self.sessions = SessionTable()
        self.addresses: dict[str, tuple[str, int]] = {}  # listener name -> bound host, port

    async def start(self) -> None:
        """Listen on smtp.listen (STARTTLS), smtp.listen_tls (implicit TLS) and bounce.listen."""
        context = self._context = self._tls_context()
        try:
            for listener in listeners_for(self._config):
                await self._listen(listener, context)
        except BaseException:
            await self.stop(grace=0)
            raise

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; let DATA transactions finish for up to `grace` seconds, answering
        everything else with 421 4.3.2; then close what is left."""
        for server in self._servers:
            server.close()
        self.sessions.shut_down()
        if not await self.sessions.wait_closed(grace):
            self.sessions.shut_down(now=True)
            await self.sessions.wait_closed(1.0)
        for server in self._servers:
            with contextlib.suppress(TimeoutError):  # 3.12+ waits for every connection
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()

    def reload_certificate(self, config: Config) -> None:
        """Take `config`'s certificate for the handshakes to come (SIGHUP, e.g. after a
        renewal); sessions already in TLS keep theirs. Raises ssl.SSLError or OSError, leaving
        the current one, when the new files do not load."""
        cert, key = tls_paths(config)
        server_context(cert, key)  # loads both or raises, before touching the live context
        if self._context is not None:
            self._context.load_cert_chain(cert, key)
        self._config = config

    def _tls_context(self) -> ssl.SSLContext:
        cert, key = tls_paths(self._config)
        if not self._config.smtp.tls_cert:  # development: a self-signed one in the state dir
            ensure_self_signed(cert, key, self._config.hostname)
        return server_context(cert, key)

    async def _listen(self, listener: Listener, context: ssl.SSLContext) -> None:
        host, port = parse_hostport(listener.address, listener.default_port, listener.name)
        handler = SubmissionHandler(
            listener,
            self._db,
            self._policy,
            self._verp,
            self._config.hostname,
            self._config.delivery.max_age,
            self._config.smtp.trusted_networks,
            self._accepts,
            self._prepare,
        )
        loop = asyncio.get_running_loop()
        factory = functools.partial(self._protocol, handler, context, loop)
        implicit = context if listener.implicit_tls else None
        server = await loop.create_server(factory, host, port, ssl=implicit)
        self._servers.append(server)
        self.addresses[listener.name] = server.sockets[0].getsockname()[:2]
        log.info("SMTP %s listening on %s:%d", listener.name, *self.addresses[listener.name])

    def _protocol(
        self, handler: SubmissionHandler, context: ssl.SSLContext, loop: asyncio.AbstractEventLoop
    ) -> SendmillSMTP:
        smtp = self._config.smtp
        implicit = handler.listener.implicit_tls
        return SendmillSMTP(
            handler,
            self._credentials,
            self.sessions,
            plaintext_auth_on_loopback=smtp.plaintext_auth_on_loopback,
            hostname=self._config.hostname,
            ident="ESMTP Sendmill",
            tls_context=None if implicit else context,
            auth_require_tls=not implicit,
            data_size_limit=self._policy.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,  # bytes, and 8BITMIME advertised
            timeout=smtp.timeout,
            loop=loop,
        )
