"""One outbound SMTP connection to one MX host or relay, reused for several transactions.

A small client over asyncio streams rather than aiosmtplib: delivery needs PIPELINING
(RFC 2920: MAIL and every RCPT in one write) and as little per-message overhead as possible,
and aiosmtplib sends each command in its own round trip. Every network wait has the RFC 5321
§4.5.3.2 timeout given by the caller.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field


class SmtpClientError(Exception):
    """A failure of the connection itself (not a per-recipient reply)."""


class ConnectFailed(SmtpClientError):
    """Could not connect, greet or negotiate TLS: try the next host, or later."""


class SessionClosed(SmtpClientError):
    """The server closed the session (421, hang-up, timeout); the connection is unusable."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(slots=True)
class Envelope:
    mail_from: str
    recipients: Sequence[str]
    data: bytes  # RFC 5322 message with CRLF line endings
    eight_bit: bool = False
    smtputf8: bool = False


@dataclass(frozen=True, slots=True)
class RecipientReply:
    recipient: str
    code: int
    text: str  # the whole reply, e.g. "250 2.0.0 Ok: queued as 1234"

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    @property
    def is_temporary(self) -> bool:
        return 400 <= self.code < 500


@dataclass(slots=True)
class TransactionResult:
    replies: list[RecipientReply] = field(default_factory=list)

    @property
    def accepted(self) -> list[str]:
        return [r.recipient for r in self.replies if 200 <= r.code < 300]


# What a peer may send in one reply (RFC 5321 §4.5.3.1.5 allows 512 octets a line; EHLO lists
# a few dozen lines): beyond this it is not talking SMTP, and the session is given up.
MAX_REPLY_LINES = 100
MAX_REPLY_TEXT = 1000  # characters of a reply kept for the queue row and the attempt record
# Control characters of a peer's reply are not stored as sent: PostgreSQL refuses NUL in text
# (one such reply made every outcome batch fail), and logs and headers want none.
_PRINTABLE = {c: "?" for c in [*range(0x20), 0x7F]}

# Refusals decided before any traffic, worded like the replies a server would give.
REPLY_TOO_BIG = "552 5.3.4 Message too big for the destination server (SIZE {size})"
REPLY_NO_8BITMIME = "554 5.6.3 8-bit message and the destination does not support 8BITMIME"
REPLY_NO_SMTPUTF8 = "553 5.6.7 Internationalised address and no SMTPUTF8 at the destination"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def dot_stuff(data: bytes) -> bytes:
    """Transparency (RFC 5321 §4.5.2) and the terminating CRLF.CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data + b".\r\n"


class SmtpConnection:
    """An open, greeted (and possibly TLS-protected) SMTP session."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        command_timeout: float,
        data_timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.peer = peer
        self._command_timeout = command_timeout
        self._data_timeout = data_timeout
        self.extensions: dict[str, str] = {}
        self.tls_active = False
        self.messages_sent = 0
        self._closed = False

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        helo_name: str,
        tls: str = "opportunistic",
        source_address: str | None = None,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 30,
        greeting_timeout: float = 300,
        command_timeout: float = 300,
        data_timeout: float = 600,
        server_hostname: str | None = None,
    ) -> SmtpConnection:
        context = _client_context(tls)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host,
                    port,
                    ssl=context if tls == "implicit" else None,
                    server_hostname=(server_hostname or host) if tls == "implicit" else None,
                    local_addr=(source_address, 0) if source_address else None,
                ),
                connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectFailed(f"{host}:{port}: {exc or exc.__class__.__name__}") from None
        conn = cls(reader, writer, f"{host}:{port}", command_timeout, data_timeout)
        conn.tls_active = tls == "implicit"
        try:
            code, text = await conn._read_reply(greeting_timeout)
            if code != 220:
                raise SessionClosed(code, text)
            await conn._ehlo(helo_name)
            if tls in ("opportunistic", "required") and not conn.tls_active:
                if "starttls" in conn.extensions:
                    await conn._starttls(context, server_hostname or host, helo_name)
                elif tls == "required":
                    raise ConnectFailed(f"{conn.peer}: STARTTLS required but not offered")
            if username:
                if not conn.tls_active and not _is_loopback(host):
                    raise ConnectFailed(f"{conn.peer}: refusing AUTH without TLS")
                await conn._auth(username, password or "")
        except SessionClosed:
            conn._abort()
            raise
        except ConnectFailed:
            conn._abort()
            raise
        except (OSError, ssl.SSLError) as exc:
            conn._abort()
            raise ConnectFailed(f"{conn.peer}: {exc}") from None
        return conn

    # --- protocol steps -----------------------------------------------------------------------

    async def _read_lines(self, timeout: float | None = None) -> list[str]:
        """The lines of one (possibly multi-line) reply, all within `timeout`: a peer sending a
        byte a second does not stretch it."""
        lines: list[str] = []
        try:
            async with asyncio.timeout(timeout or self._command_timeout):
                while True:
                    raw = await self._reader.readline()
                    if not raw:
                        raise SessionClosed(421, "421 4.4.2 connection closed by the server")
                    if not raw.endswith(b"\n"):  # the peer closed in the middle of a line
                        raise SessionClosed(421, "421 4.4.2 connection closed mid-reply")
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    lines.append(line.translate(_PRINTABLE)[:MAX_REPLY_TEXT])
                    if len(line) < 4 or line[3] != "-":
                        return lines
                    if len(lines) >= MAX_REPLY_LINES:
                        raise _protocol_error(f"a reply of over {MAX_REPLY_LINES} lines")
        except TimeoutError:
            raise SessionClosed(421, "421 4.4.2 timeout waiting for the server") from None
        except ValueError:  # a line over the stream's limit (64 KiB)
            raise _protocol_error("a reply line of over 64 KiB") from None
        except (ConnectionError, OSError) as exc:
            raise SessionClosed(421, f"421 4.4.2 connection lost: {exc}") from None

    async def _read_reply(self, timeout: float | None = None) -> tuple[int, str]:
        lines = await self._read_lines(timeout)
        code = _reply_code(lines[-1])
        text = " ".join([lines[0][:3] + " " + lines[0][4:], *(line[4:] for line in lines[1:])])
        text = text[:MAX_REPLY_TEXT]
        if code == 421:
            raise SessionClosed(code, text)
        return code, text

    async def _command(self, line: str, timeout: float | None = None) -> tuple[int, str]:
        self._writer.write(line.encode("utf-8") + b"\r\n")
        return await self._read_reply(timeout)

    async def _ehlo(self, helo_name: str) -> None:
        self._writer.write(f"EHLO {helo_name}\r\n".encode())
        lines = await self._read_lines()
        code = _reply_code(lines[-1])  # garbage raised a ValueError here: a reconnect storm
        if code == 421:
            raise SessionClosed(code, lines[-1])
        if code >= 500:
            code, text = await self._command(f"HELO {helo_name}")
            if code != 250:
                raise ConnectFailed(f"{self.peer}: HELO refused: {text}")
            self.extensions = {}
            return
        if code != 250:
            raise SessionClosed(code, lines[-1])
        self.extensions = {}
        for line in lines[1:]:
            keyword, _, params = line[4:].partition(" ")
            self.extensions[keyword.lower()] = params

    async def _starttls(self, context: ssl.SSLContext, server_hostname: str, helo: str) -> None:
        code, text = await self._command("STARTTLS")
        if code != 220:
            raise ConnectFailed(f"{self.peer}: STARTTLS refused: {text}")
        try:
            await asyncio.wait_for(
                self._writer.start_tls(context, server_hostname=server_hostname),
                self._command_timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            raise ConnectFailed(f"{self.peer}: TLS handshake failed: {exc}") from None
        self.tls_active = True
        await self._ehlo(helo)

    async def _auth(self, username: str, password: str) -> None:
        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        code, text = await self._command(f"AUTH PLAIN {token}")
        if code != 235:
            raise ConnectFailed(f"{self.peer}: AUTH failed: {text}")

    # --- transactions -----------------------------------------------------------------------

    def _refuse_before_sending(self, envelope: Envelope) -> str | None:
        size_limit = self.extensions.get("size", "")
        if size_limit.isdigit() and int(size_limit) and len(envelope.data) > int(size_limit):
            return REPLY_TOO_BIG.format(size=size_limit)
        if envelope.eight_bit and "8bitmime" not in self.extensions:
            return REPLY_NO_8BITMIME
        if envelope.smtputf8 and "smtputf8" not in self.extensions:
            return REPLY_NO_SMTPUTF8
        return None

    async def send(self, envelope: Envelope) -> TransactionResult:
        """One transaction; per-recipient replies. Raises SessionClosed if the session dies."""
        if self._closed:
            raise SessionClosed(421, "421 4.4.2 connection already closed")
        refusal = self._refuse_before_sending(envelope)
        if refusal is not None:
            code = int(refusal[:3])
            return TransactionResult(
                [RecipientReply(r, code, refusal) for r in envelope.recipients]
            )
        self.messages_sent += 1
        params = ""
        if "size" in self.extensions:
            params += f" SIZE={len(envelope.data)}"
        if envelope.eight_bit:
            params += " BODY=8BITMIME"
        if envelope.smtputf8:
            params += " SMTPUTF8"
        commands = [f"MAIL FROM:<{envelope.mail_from}>{params}"]
        commands += [f"RCPT TO:<{r}>" for r in envelope.recipients]
        try:
            replies = await self._exchange(commands)
            mail_code, mail_text = replies[0]
            if not 200 <= mail_code < 300:
                await self._rset()
                return TransactionResult(
                    [RecipientReply(r, mail_code, mail_text) for r in envelope.recipients]
                )
            result = TransactionResult()
            accepted: list[str] = []
            for recipient, (code, text) in zip(envelope.recipients, replies[1:], strict=True):
                if 200 <= code < 300:
                    accepted.append(recipient)
                else:
                    result.replies.append(RecipientReply(recipient, code, text))
            if not accepted:
                await self._rset()
                return result
            code, text = await self._command("DATA")
            if code != 354:
                await self._rset()
                result.replies += [RecipientReply(r, code, text) for r in accepted]
                return result
            self._writer.write(dot_stuff(envelope.data))
            code, text = await self._read_reply(self._data_timeout)
            result.replies += [RecipientReply(r, code, text) for r in accepted]
            order = {r: i for i, r in enumerate(envelope.recipients)}
            result.replies.sort(key=lambda reply: order[reply.recipient])
            return result
        except SessionClosed:
            self._abort()
            raise

    async def _exchange(self, commands: list[str]) -> list[tuple[int, str]]:
        """Send commands pipelined when the server allows it, else one at a time."""
        if "pipelining" in self.extensions:
            self._writer.write("".join(c + "\r\n" for c in commands).encode("utf-8"))
            return [await self._read_reply() for _ in commands]
        return [await self._command(c) for c in commands]

    async def _rset(self) -> None:
        code, text = await self._command("RSET")
        if code != 250:
            raise SessionClosed(code, text)

    def _abort(self) -> None:
        self._closed = True
        self._writer.close()

    async def close(self) -> None:
        """QUIT politely (briefly) and close."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self._reader.readline(), 2)
        except (OSError, TimeoutError, ConnectionError):
            pass
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError, ConnectionError, ssl.SSLError):
            await asyncio.wait_for(self._writer.wait_closed(), 2)


def _reply_code(line: str) -> int:
    """The code of a reply line: three digits, the first 2 to 5 (RFC 5321 §4.2). Anything else
    is a protocol error, never a reply: a "999" must not bounce a message."""
    code = line[:3]
    if len(code) != 3 or not code.isascii() or not code.isdigit() or code[0] not in "2345":
        raise _protocol_error(f"unparseable reply {line[:80]!r}")
    return int(code)


def _protocol_error(what: str) -> SessionClosed:
    """The peer broke the protocol: the session is unusable; the attempt is deferred with this
    reply recorded."""
    return SessionClosed(451, f"451 4.5.0 Protocol error from the server: {what}")


def _client_context(tls: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if tls == "opportunistic":
        # RFC 7435: opportunistic TLS beats plaintext even when the certificate cannot be
        # checked (MX certificates rarely match the MX name).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
