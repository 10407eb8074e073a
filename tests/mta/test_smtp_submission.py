"""SMTP intake (mta/smtp_server.py) over real sockets against a real PostgreSQL: AUTH over TLS,
never an open relay, the VERP-only bounce listener, sender ownership, size, recipient and line
limits, header sanity, database outages and graceful shutdown."""

from __future__ import annotations

import asyncio
import base64
import email
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import pytest

from mta import credentials, queue, replies, tenants
from mta.config import build_config
from mta.credentials import CredentialStore
from mta.queue import Submission
from mta.smtp_server import SmtpListeners, queued_reply
from mta.submission import SubmissionPolicy
from mta.tls import tls_paths
from mta.verp import Verp

DOMAIN = "example.test"
BOUNCE_DOMAIN = "bounces.sendmill.test"
MAX_SIZE = 20_000
MAX_RECIPIENTS = 3
SENDER = f"app@{DOMAIN}"
MESSAGE = f"From: {SENDER}\r\nTo: x@dest.test\r\nSubject: t\r\n\r\nhi\r\n".encode()


@dataclass
class Intake:
    """Running listeners on ephemeral ports, and an account that may send from DOMAIN."""

    listeners: SmtpListeners
    db: asyncpg.Pool
    verp: Verp
    company_id: int
    username: str
    password: str
    cert: Path

    def address(self, listener: str) -> tuple[str, int]:
        return self.listeners.addresses[listener]

    async def client(self, listener: str = "submission", **options: Any) -> aiosmtplib.SMTP:
        """A connected aiosmtplib client; STARTTLS on the submission port unless told not to."""
        host, port = self.address(listener)
        options.setdefault("start_tls", listener == "submission")
        options.setdefault("use_tls", listener == "submissions")
        context = ssl.create_default_context(cafile=self.cert)  # our self-signed certificate
        client = aiosmtplib.SMTP(
            hostname=host, port=port, timeout=10, tls_context=context, **options
        )
        await client.connect()
        await client.ehlo()  # after STARTTLS too: the extensions offered inside TLS
        return client

    async def logged_in(self, listener: str = "submission") -> aiosmtplib.SMTP:
        client = await self.client(listener)
        await client.login(self.username, self.password)
        return client

    async def queued(self) -> list[asyncpg.Record]:
        return await self.db.fetch(
            "SELECT r.id, r.recipient, r.state::text, m.body, m.mail_from"
            " FROM recipients r JOIN messages m ON m.id = r.message_id ORDER BY r.id"
        )


IntakeFactory = Callable[..., Awaitable[Intake]]


@pytest.fixture
async def intake_factory(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[IntakeFactory]:
    started: list[SmtpListeners] = []

    async def start(**smtp: Any) -> Intake:
        config = build_config(
            {
                "hostname": "mx.sendmill.test",
                "state_dir": str(tmp_path / "state"),
                "smtp": {
                    "listen": "127.0.0.1:0",
                    "listen_tls": "127.0.0.1:0",
                    "max_message_size": MAX_SIZE,
                    "max_recipients": MAX_RECIPIENTS,
                    "plaintext_auth_on_loopback": False,
                    **smtp,
                },
                "bounce": {"domain": BOUNCE_DOMAIN, "listen": "127.0.0.1:0"},
            }
        )
        company_id = await tenants.ensure_company(pool, "acme")
        await pool.execute(
            "INSERT INTO sending_domains (company_id, domain) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            company_id,
            DOMAIN,
        )
        login = await credentials.create_smtp_login(pool, company_id, f"app{len(started)}")
        policy = SubmissionPolicy(
            pool, config.hostname, config.smtp.max_message_size, config.smtp.max_recipients
        )
        verp = Verp(b"test-secret", BOUNCE_DOMAIN)
        listeners = SmtpListeners(config, pool, CredentialStore(pool), policy, verp)
        await listeners.start()
        started.append(listeners)
        cert, _ = tls_paths(config)
        return Intake(listeners, pool, verp, company_id, login.login, login.secret, cert)

    yield start
    for listeners in started:
        await listeners.stop(grace=1)


@pytest.fixture
async def intake(intake_factory: IntakeFactory) -> Intake:
    return await intake_factory()


class RawClient:
    """Line-level SMTP for what a well-behaved client library will not send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, address: tuple[str, int]) -> RawClient:
        client = cls(*await asyncio.open_connection(*address))
        code, _ = await client.reply()
        assert code == 220
        return client

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 10)).decode()
            assert line, "connection closed"
            lines.append(line[4:].rstrip("\r\n"))
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    async def send(self, line: str | bytes) -> tuple[int, str]:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return await self.reply()

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 10) == b""

    def close(self) -> None:
        self.writer.close()


async def _queue_one(intake: Intake) -> int:
    """A queued recipient row, to which a DSN can come back."""
    (row,) = await queue.enqueue(
        intake.db,
        Submission(intake.company_id, None, SENDER, DOMAIN, ["x@dest.test"], MESSAGE),
        3600,
    )
    return row.id


# --- authenticated submission -----------------------------------------------------------------


async def test_starttls_and_auth_plain_queue_one_row_per_recipient(intake: Intake) -> None:
    client = await intake.client()
    response = await client.auth_plain(intake.username, intake.password)
    assert response.code == 235
    recipients = ["a@dest.test", "b@dest.test"]
    errors, reply = await client.sendmail(SENDER, recipients, MESSAGE)
    await client.quit()

    assert not errors
    rows = await intake.queued()
    assert [r["recipient"] for r in rows] == recipients
    assert {r["state"] for r in rows} == {"queued"}
    assert reply == "2.0.0 OK: queued as " + ",".join(str(r["id"]) for r in rows)
    body = rows[0]["body"]
    assert body.startswith(b"Received: from ")
    assert b"by mx.sendmill.test (Sendmill) with ESMTPSA;" in body
    assert b"Message-ID: <" in body and b"\r\nDate: " in body


async def test_implicit_tls_port_accepts_a_submission(intake: Intake) -> None:
    client = await intake.logged_in("submissions")
    errors, _ = await client.sendmail(SENDER, ["x@dest.test"], MESSAGE)
    await client.quit()
    assert not errors
    (row,) = await intake.queued()
    assert b"with ESMTPSA;" in row["body"]


async def test_auth_login_works(intake: Intake) -> None:
    client = await intake.client()
    response = await client.auth_login(intake.username, intake.password)
    assert response.code == 235
    errors, _ = await client.sendmail(SENDER, ["x@dest.test"], MESSAGE)
    await client.quit()
    assert not errors and len(await intake.queued()) == 1


async def test_a_wrong_password_is_refused_and_the_session_stays_usable(intake: Intake) -> None:
    client = await intake.client()
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
        await client.login(intake.username, "wrong")
    assert failed.value.code == 535 and failed.value.message.startswith("5.7.8")
    await client.login(intake.username, intake.password)
    errors, _ = await client.sendmail(SENDER, ["x@dest.test"], MESSAGE)
    await client.quit()
    assert not errors and len(await intake.queued()) == 1


async def test_a_password_guesser_is_disconnected_after_three_failures(intake: Intake) -> None:
    client = await intake.client()
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
            await client.auth_plain(intake.username, "guess")
        assert failed.value.code == 535
    with pytest.raises(aiosmtplib.SMTPException) as closed:
        await client.auth_plain(intake.username, "guess")
    assert "421" in str(closed.value) or getattr(closed.value, "code", None) == 421
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    client.close()
    # A new connection may try again (with the right password, it works).
    again = await intake.logged_in()
    await again.quit()


async def test_a_revoked_login_stops_working_within_seconds(intake: Intake) -> None:
    first = await intake.logged_in()  # the login is now cached
    await first.quit()
    credential_id = await intake.db.fetchval(
        "SELECT id FROM credentials WHERE username = $1", intake.username
    )
    await credentials.revoke(intake.db, credential_id)
    deadline = asyncio.get_running_loop().time() + 8
    while True:
        client = await intake.client()
        try:
            await client.login(intake.username, intake.password)
        except aiosmtplib.SMTPAuthenticationError:
            break
        finally:
            client.close()
        assert asyncio.get_running_loop().time() < deadline, "revoked login still accepted"
        await asyncio.sleep(0.5)


async def test_auth_needs_tls_even_from_loopback_unless_configured(
    intake_factory: IntakeFactory,
) -> None:
    intake = await intake_factory(plaintext_auth_on_loopback=False)
    client = await intake.client(start_tls=False)
    assert not client.supports_extension("auth")
    token = base64.b64encode(f"\0{intake.username}\0{intake.password}".encode())
    code, message = await client.execute_command(b"AUTH", b"PLAIN", token)
    assert (code, f"{code} {message}") == (538, replies.S538_ENCRYPTION_REQUIRED)
    await client.quit()

    dev = await intake_factory(plaintext_auth_on_loopback=True)
    client = await dev.client(start_tls=False)
    await client.login(dev.username, dev.password)
    errors, _ = await client.sendmail(SENDER, ["x@dest.test"], MESSAGE)
    await client.quit()
    assert not errors
    (row,) = await dev.queued()
    assert b"with ESMTPA;" in row["body"]


async def test_ehlo_advertises_the_limits_and_extensions(intake: Intake) -> None:
    client = await intake.client()
    assert client.esmtp_extensions["size"] == str(MAX_SIZE)
    for extension in ("8bitmime", "smtputf8", "enhancedstatuscodes", "auth"):
        assert client.supports_extension(extension), extension
    assert client.server_auth_methods == ["login", "plain"]
    await client.quit()


async def test_a_pipelined_transaction_gets_every_reply_in_order(intake: Intake) -> None:
    host, port = intake.address("submissions")
    context = ssl.create_default_context(cafile=intake.cert)
    reader, writer = await asyncio.open_connection(host, port, ssl=context)

    async def replies_to(data: bytes, count: int) -> list[str]:
        writer.write(data)
        got = []
        while len(got) < count:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode().rstrip()
            if line[3:4] == " ":  # the last line of a reply
                got.append(line)
            elif line.startswith("250-PIPELINING"):
                got.append("advertised")
        return got

    assert (await replies_to(b"", 1))[0].startswith("220")
    assert await replies_to(b"EHLO client.test\r\n", 2) == ["advertised", "250 HELP"]
    token = base64.b64encode(f"\0{intake.username}\0{intake.password}".encode())
    assert (await replies_to(b"AUTH PLAIN " + token + b"\r\n", 1))[0].startswith("235")
    rcpts = b"".join(b"RCPT TO:<r%d@dest.test>\r\n" % i for i in range(MAX_RECIPIENTS + 1))
    pipelined = b"MAIL FROM:<" + SENDER.encode() + b">\r\n" + rcpts + b"DATA\r\n"
    codes = [r[:3] for r in await replies_to(pipelined, MAX_RECIPIENTS + 3)]
    assert codes == ["250", "250", "250", "250", "452", "354"]
    done = await replies_to(MESSAGE + b".\r\nQUIT\r\n", 2)
    assert [r[:3] for r in done] == ["250", "221"]
    writer.close()
    assert len(await intake.queued()) == MAX_RECIPIENTS


async def test_the_bounce_listener_does_not_offer_auth(intake: Intake) -> None:
    client = await intake.client("bounce", start_tls=True)
    assert not client.supports_extension("auth")
    token = base64.b64encode(f"\0{intake.username}\0{intake.password}".encode())
    code, _ = await client.execute_command(b"AUTH", b"PLAIN", token)
    assert code == 502
    await client.quit()


async def test_auth_is_refused_inside_a_mail_transaction(intake: Intake) -> None:
    client = await intake.client()
    await client.mail(SENDER)
    token = base64.b64encode(f"\0{intake.username}\0{intake.password}".encode())
    code, _ = await client.execute_command(b"AUTH", b"PLAIN", token)
    assert code == 503
    await client.quit()


# --- never an open relay ------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["submission", "bounce"])
@pytest.mark.parametrize(
    ("recipient", "refusal"),
    [
        ("victim@outside.test", "550 5.7.1"),
        (f"@{BOUNCE_DOMAIN}:victim@outside.test", "550 5.7.1"),  # the source route is dropped
        (f"victim@{BOUNCE_DOMAIN}.outside.test", "550 5.7.1"),
        ("victim@[127.0.0.1]", "550 5.7.1"),
        (f"victim%outside.test@{BOUNCE_DOMAIN}", "550 5.1.1"),
        (f"outside.test!victim@{BOUNCE_DOMAIN}", "550 5.1.1"),
        (f'"victim@outside.test"@{BOUNCE_DOMAIN}', "550 5.1.1"),
        (f"b+aaaa-bbbbbbbb@{BOUNCE_DOMAIN}", "550 5.1.1"),
        (f"victim@outside.test@{BOUNCE_DOMAIN}", "553 5.1.3"),
    ],
)
async def test_unauthenticated_clients_cannot_relay(
    intake: Intake, listener: str, recipient: str, refusal: str
) -> None:
    client = await RawClient.open(intake.address(listener))
    await client.send("EHLO probe.test")
    assert (await client.send("MAIL FROM:<spammer@outside.test>"))[0] == 250
    code, text = await client.send(f"RCPT TO:<{recipient}>")
    assert f"{code} {text}".startswith(refusal)
    assert (await client.send("DATA"))[0] == 503
    client.close()
    assert await intake.queued() == []


async def test_an_unauthenticated_client_on_the_submission_port_is_told_to_authenticate(
    intake: Intake,
) -> None:
    client = await intake.client()
    await client.mail("someone@outside.test")
    code, message = await client.execute_command(b"RCPT", b"TO:<friend@dest.test>")
    assert f"{code} {message}" == replies.S550_NO_RELAY
    await client.quit()


# --- the bounce listener ------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["bounce", "submission"])
async def test_a_dsn_to_a_valid_verp_address_is_stored_with_its_recipient(
    intake: Intake, listener: str
) -> None:
    recipient_id = await _queue_one(intake)
    client = await intake.client(listener, start_tls=False)
    errors, reply = await client.sendmail(
        "", [intake.verp.address(recipient_id)], b"Subject: dsn\r\n\r\nbounced\r\n"
    )
    await client.quit()
    assert not errors and reply.startswith("2.0.0")
    stored = await intake.db.fetchrow(
        "SELECT recipient_id, envelope_from, envelope_to, body FROM inbound_messages"
    )
    assert stored["recipient_id"] == recipient_id
    assert stored["envelope_from"] == ""
    assert stored["envelope_to"] == intake.verp.address(recipient_id)
    assert stored["body"].startswith(b"Received: from ") and b"bounced" in stored["body"]


async def test_a_forged_verp_address_is_no_such_user(intake: Intake) -> None:
    recipient_id = await _queue_one(intake)
    genuine = intake.verp.address(recipient_id)
    forged = Verp(b"another-secret", BOUNCE_DOMAIN).address(recipient_id)
    client = await intake.client("bounce", start_tls=False)
    await client.mail("")
    code, message = await client.execute_command(b"RCPT", f"TO:<{forged}>".encode())
    assert f"{code} {message}" == replies.S550_NO_SUCH_USER
    code, _ = await client.execute_command(b"RCPT", f"TO:<{genuine.upper()}>".encode())
    assert code == 250  # some MTAs fold the case of local parts
    await client.quit()


async def test_postmaster_of_the_bounce_domain_takes_mail_and_keeps_it(intake: Intake) -> None:
    client = await intake.client("bounce", start_tls=False)
    errors, reply = await client.sendmail(
        "someone@elsewhere.test",
        [f"PostMaster@{BOUNCE_DOMAIN}"],
        b"Subject: your server\r\n\r\nplease stop\r\n",
    )
    await client.quit()
    assert not errors and reply.startswith("2.0.0")
    stored = await intake.db.fetchrow(
        "SELECT recipient_id, envelope_to, body FROM inbound_messages"
    )
    assert stored["recipient_id"] is None
    assert stored["envelope_to"] == f"PostMaster@{BOUNCE_DOMAIN}"
    assert b"please stop" in stored["body"]


# --- sender ownership ---------------------------------------------------------------------


async def test_sending_from_a_domain_the_account_does_not_own_is_refused(intake: Intake) -> None:
    client = await intake.logged_in()
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await client.sendmail("ceo@bank.test", ["x@dest.test"], MESSAGE)
    assert refused.value.code == 550 and refused.value.message.startswith("5.7.1")
    forged = MESSAGE.replace(SENDER.encode(), b"ceo@bank.test")
    with pytest.raises(aiosmtplib.SMTPDataError) as rejected:
        await client.sendmail(SENDER, ["x@dest.test"], forged)
    assert rejected.value.code == 550 and rejected.value.message.startswith("5.7.1")
    await client.quit()
    assert await intake.queued() == []


async def test_a_message_without_from_is_rejected(intake: Intake) -> None:
    client = await intake.logged_in()
    with pytest.raises(aiosmtplib.SMTPDataError) as rejected:
        await client.sendmail(SENDER, ["x@dest.test"], b"To: x@dest.test\r\n\r\nhi\r\n")
    assert rejected.value.code == 554 and rejected.value.message.startswith("5.6.0")
    await client.quit()
    assert await intake.queued() == []


# --- limits ---------------------------------------------------------------------------------


async def test_an_oversized_message_is_refused_after_data_and_the_session_goes_on(
    intake: Intake,
) -> None:
    client = await intake.logged_in()
    big = MESSAGE + (b"y" * 70 + b"\r\n") * (MAX_SIZE // 70)
    await client.mail(SENDER)
    await client.rcpt("x@dest.test")
    with pytest.raises(aiosmtplib.SMTPDataError) as too_big:
        await client.data(big)
    assert f"{too_big.value.code} {too_big.value.message}" == replies.S552_TOO_BIG.format(
        limit=MAX_SIZE
    )
    assert await intake.queued() == []
    errors, _ = await client.sendmail(SENDER, ["x@dest.test"], MESSAGE)
    await client.quit()
    assert not errors and len(await intake.queued()) == 1


async def test_a_declared_size_over_the_limit_is_refused_at_mail(intake: Intake) -> None:
    client = await intake.logged_in()
    code, message = await client.execute_command(
        b"MAIL", f"FROM:<{SENDER}>".encode(), f"SIZE={MAX_SIZE + 1}".encode()
    )
    assert f"{code} {message}" == replies.S552_TOO_BIG.format(limit=MAX_SIZE)
    await client.quit()


async def test_recipients_beyond_the_limit_get_452_and_the_rest_get_the_message(
    intake: Intake,
) -> None:
    client = await intake.logged_in()
    recipients = [f"r{i}@dest.test" for i in range(MAX_RECIPIENTS + 2)]
    errors, _ = await client.sendmail(SENDER, recipients, MESSAGE)
    await client.quit()
    assert {r: (e.code, e.message[:5]) for r, e in errors.items()} == {
        r: (452, "4.5.3") for r in recipients[MAX_RECIPIENTS:]
    }
    assert [r["recipient"] for r in await intake.queued()] == recipients[:MAX_RECIPIENTS]


def test_the_queued_reply_lists_the_ids_within_one_reply_line() -> None:
    assert queued_reply([7, 8]) == "250 2.0.0 OK: queued as 7,8"
    ids = list(range(100_000, 101_000))
    assert queued_reply(ids) == "250 2.0.0 OK: queued as 100000 and 999 more"


@pytest.mark.parametrize("length", [999, 5000])
async def test_a_line_over_998_characters_is_re_encoded_not_refused(
    intake: Intake, length: int
) -> None:
    client = await intake.logged_in()
    line = b"z" * length + "é".encode()
    message = MESSAGE.replace(b"\r\n\r\n", b"\r\nContent-Type: text/html; charset=utf-8\r\n\r\n")
    errors, _ = await client.sendmail(SENDER, ["x@dest.test"], message + line + b"\r\n")
    await client.quit()
    assert not errors
    (row,) = await intake.queued()
    body = bytes(row["body"])
    assert max(map(len, body.split(b"\r\n"))) <= 998
    parsed = email.message_from_bytes(body)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_payload(decode=True) == b"hi\r\n" + line + b"\r\n"


async def test_a_line_longer_than_the_message_size_limit_is_refused_and_the_session_goes_on(
    intake: Intake,
) -> None:
    client = await intake.logged_in()
    await client.mail(SENDER)
    await client.rcpt("x@dest.test")
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await client.data(MESSAGE + b"z" * (MAX_SIZE + 10) + b"\r\n")
    assert f"{refused.value.code} {refused.value.message}" == replies.S500_LINE_TOO_LONG
    errors, _ = await client.sendmail(SENDER, ["x@dest.test"], MESSAGE + b"z" * 998 + b"\r\n")
    await client.quit()
    assert not errors and len(await intake.queued()) == 1


async def test_a_message_with_a_nul_byte_is_refused_and_the_session_goes_on(
    intake: Intake,
) -> None:
    client = await intake.logged_in()
    await client.mail(SENDER)
    await client.rcpt("x@dest.test")
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await client.data(MESSAGE + b"a\0b\r\n")
    assert refused.value.code == 554
    assert "NUL" in refused.value.message
    errors, _ = await client.sendmail(SENDER, ["x@dest.test"], MESSAGE)
    await client.quit()
    assert not errors and len(await intake.queued()) == 1


async def test_protocol_mistakes_get_their_replies_and_the_session_goes_on(
    intake: Intake,
) -> None:
    client = await RawClient.open(intake.address("bounce"))
    assert (await client.send("MAIL FROM:<a@b.test>"))[0] == 503  # before EHLO
    await client.send("EHLO client.test")
    assert await client.send("RCPT TO:<x@dest.test>") == (503, "5.5.1 MAIL FROM first")
    assert (await client.send("MAIL TO:<a@b.test>"))[0] == 501
    assert (await client.send("MAIL FROM:<a@b@c>"))[0] == 553
    assert (await client.send("MAIL FROM:<a@b.test> BODY=9BIT"))[0] == 501
    assert (await client.send("BOGUS"))[0] == 500
    assert (await client.send(b"MAIL FROM:<a\x01b@c.test>"))[0] == 501
    assert await client.send("MAIL FROM:<a@b.test>") == (250, "2.1.0 Sender OK")
    assert (await client.send("MAIL FROM:<c@d.test>"))[0] == 503  # nested
    assert await client.send("DATA") == (503, "5.5.1 No valid recipients")
    assert (await client.send("X" * 600))[0] == 500  # command line too long
    assert await client.send("RSET") == (250, "2.0.0 OK")
    assert await client.send("NOOP") == (250, "2.0.0 OK")
    assert await client.send("QUIT") == (221, "2.0.0 Bye")
    assert await client.closed()


async def test_utf8_addresses_are_accepted_with_smtputf8(intake: Intake) -> None:
    client = await intake.logged_in()
    errors, _ = await client.sendmail(
        SENDER, ["jürgen@bücher.test"], MESSAGE, mail_options=["SMTPUTF8"]
    )
    await client.quit()
    assert not errors
    (row,) = await intake.queued()
    assert row["recipient"] == "jürgen@bücher.test"
    assert b"with UTF8SMTPSA;" in row["body"]


# --- failures -------------------------------------------------------------------------------


async def test_nothing_is_acknowledged_when_the_database_is_unreachable(
    intake: Intake, database_url: str
) -> None:
    client = await intake.logged_in()
    await client.mail(SENDER)
    await client.rcpt("x@dest.test")
    await intake.db.close()
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await client.data(MESSAGE)
    assert f"{refused.value.code} {refused.value.message}" == replies.S451_QUEUE_UNAVAILABLE
    await client.quit()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM recipients") == 0
    finally:
        await conn.close()


async def test_a_dsn_is_not_acknowledged_when_the_database_is_unreachable(
    intake: Intake,
) -> None:
    address = intake.verp.address(await _queue_one(intake))
    client = await intake.client("bounce", start_tls=False)
    await client.mail("")
    await client.rcpt(address)
    await intake.db.close()
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await client.data(b"Subject: dsn\r\n\r\nbounced\r\n")
    assert refused.value.code == 451
    await client.quit()


async def test_auth_is_a_temporary_failure_when_the_database_is_unreachable(
    intake: Intake,
) -> None:
    client = await intake.client()
    await intake.db.close()
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
        await client.login(intake.username, intake.password)
    assert f"{failed.value.code} {failed.value.message}" == replies.S454_AUTH_UNAVAILABLE
    await client.quit()


async def test_a_failed_tls_handshake_ends_only_that_session(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    client = await RawClient.open(intake.address("submission"))
    await client.send("EHLO confused.test")
    assert await client.send("STARTTLS") == (220, "2.0.0 Ready to start TLS")
    client.writer.write(b"this is not a TLS handshake\r\n" * 10)
    assert await client.closed()
    other = await intake.logged_in()
    await other.quit()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


# --- graceful shutdown ----------------------------------------------------------------------


async def test_stopping_lets_a_data_transaction_finish_then_refuses_connections(
    intake: Intake,
) -> None:
    idle = await RawClient.open(intake.address("bounce"))
    await idle.send("EHLO idle.test")
    sending = await RawClient.open(intake.address("bounce"))
    await sending.send("EHLO sending.test")
    await sending.send("MAIL FROM:<>")
    address = intake.verp.address(await _queue_one(intake))
    assert (await sending.send(f"RCPT TO:<{address}>"))[0] == 250
    assert (await sending.send("DATA"))[0] == 354
    sending.writer.write(b"Subject: dsn\r\n\r\nfirst half\r\n")

    stopping = asyncio.create_task(intake.listeners.stop(grace=10))
    assert await idle.reply() == (421, replies.S421_SHUTTING_DOWN[4:])
    assert await idle.closed()
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waiting for the transaction in flight

    assert (await sending.send(b"second half\r\n."))[0] == 250
    assert (await sending.reply())[0] == 421  # then told to go away
    assert await sending.closed()
    await asyncio.wait_for(stopping, 5)
    assert await intake.db.fetchval("SELECT count(*) FROM inbound_messages") == 1
    for listener in ("submission", "submissions", "bounce"):
        with pytest.raises(OSError):
            await asyncio.open_connection(*intake.address(listener))


async def test_stopping_gives_up_on_a_stalled_transaction_after_the_grace(
    intake: Intake,
) -> None:
    client = await RawClient.open(intake.address("bounce"))
    await client.send("EHLO stalled.test")
    await client.send("MAIL FROM:<>")
    await client.send(f"RCPT TO:<{intake.verp.address(await _queue_one(intake))}>")
    assert (await client.send("DATA"))[0] == 354
    await asyncio.wait_for(intake.listeners.stop(grace=0.3), 5)
    assert len(intake.listeners.sessions) == 0
    assert await intake.db.fetchval("SELECT count(*) FROM inbound_messages") == 0


async def test_a_trusted_network_submits_without_auth_but_only_from_its_sending_domains(
    intake_factory: IntakeFactory,
) -> None:
    intake = await intake_factory(trusted_networks=["127.0.0.0/8"])
    client = await intake.client()
    try:
        errors, _ = await client.sendmail(SENDER, ["x@dest.test"], MESSAGE)
        assert not errors
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await client.sendmail("app@foreign.test", ["x@dest.test"], MESSAGE)
        assert refused.value.code == 550 and "5.7.1" in refused.value.message
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as null_sender:
            await client.sendmail("", ["x@dest.test"], MESSAGE)
        assert null_sender.value.code == 550
    finally:
        await client.quit()
    [row] = await intake.queued()
    assert row["recipient"] == "x@dest.test" and row["mail_from"] == SENDER
    company = await intake.db.fetchval("SELECT company_id FROM messages")
    assert company == intake.company_id
    assert b"with ESMTPS;" in row["body"]  # the trace does not claim an AUTH that did not happen


async def test_outside_the_trusted_networks_an_unauthenticated_client_is_still_no_relay(
    intake_factory: IntakeFactory,
) -> None:
    intake = await intake_factory(trusted_networks=["10.0.0.0/8"])
    client = await intake.client()
    try:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await client.sendmail(SENDER, ["x@dest.test"], MESSAGE)
    finally:
        await client.quit()
    assert await intake.queued() == []
