"""SMTP intake policy through the running daemon: authentication, no open relay, VERP-only
bounce listener, sender ownership, size and recipient limits, header sanity."""

from __future__ import annotations

import base64
import ssl

import aiosmtplib
import pytest

from mta import credentials, queue, tenants
from mta.config import parse_hostport
from mta.daemon import Daemon
from mta.queue import Submission
from mta.verp import Verp
from tests.fixtures_daemon import TEST_DOMAIN

OK_MESSAGE = f"From: app@{TEST_DOMAIN}\r\nTo: x@dest.test\r\nSubject: t\r\n\r\nhi\r\n".encode()


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _client(address: str, **kw) -> aiosmtplib.SMTP:
    host, port = parse_hostport(address, 25, "listen")
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=10, tls_context=_context(), **kw)
    await client.connect()
    return client


async def _login(daemon: Daemon) -> tuple[str, str]:
    company = await tenants.ensure_company(daemon.db, "acme")
    issued = await credentials.create_smtp_login(daemon.db, company, "user1")
    return issued.login, issued.secret


async def _count(daemon: Daemon) -> int:
    return await daemon.db.fetchval("SELECT count(*) FROM recipients")


@pytest.fixture
async def daemon(daemon_factory) -> Daemon:
    return await daemon_factory(smtp={"max_message_size": 20_000, "max_recipients": 3})


@pytest.mark.parametrize(
    "recipient",
    [
        "victim@outside.test",
        "victim%outside.test@bounces.sendmill.test",
        "@bounces.sendmill.test:victim@outside.test",
        '"victim@outside.test"@bounces.sendmill.test',
        "postmaster@bounces.sendmill.test",
    ],
)
async def test_unauthenticated_clients_cannot_relay(daemon: Daemon, recipient: str) -> None:
    for listener in (daemon.config.smtp.listen, daemon.config.bounce.listen):
        client = await _client(listener, start_tls=False)
        await client.mail("spammer@outside.test")
        code, text = await client.execute_command(b"RCPT", f"TO:<{recipient}>".encode())
        assert code == 550, (listener, recipient, code, text)
        assert await _count(daemon) == 0
        await client.quit()


async def test_a_dsn_to_a_valid_verp_address_is_kept_and_a_forged_one_refused(
    daemon: Daemon,
) -> None:
    company = await tenants.ensure_company(daemon.db, "acme")
    (row,) = await queue.enqueue(
        daemon.db,
        Submission(company, None, f"a@{TEST_DOMAIN}", TEST_DOMAIN, ["x@dest.test"], OK_MESSAGE),
        3600,
    )
    verp = Verp(b"test-secret", daemon.config.bounce.domain)
    client = await _client(daemon.config.bounce.listen, start_tls=False)
    errors, _ = await client.sendmail("", [verp.address(row.id)], b"Subject: dsn\r\n\r\nbounce\r\n")
    assert not errors
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await client.sendmail("", [verp.address(row.id + 1).replace("-", "-a")], b"x\r\n")
    assert refused.value.recipients[0].code == 550
    await client.quit()
    stored = await daemon.db.fetchrow("SELECT recipient_id, body FROM inbound_messages")
    assert stored["recipient_id"] == row.id and b"bounce" in stored["body"]


async def test_wrong_password_is_refused_and_the_session_stays_usable(daemon: Daemon) -> None:
    username, password = await _login(daemon)
    client = await _client(daemon.config.smtp.listen, start_tls=True)
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
        await client.login(username, "wrong")
    assert failed.value.code == 535
    await client.login(username, password)
    errors, _ = await client.sendmail(f"app@{TEST_DOMAIN}", ["x@dest.test"], OK_MESSAGE)
    assert not errors and await _count(daemon) == 1
    await client.quit()


async def test_implicit_tls_submission_works(daemon: Daemon) -> None:
    username, password = await _login(daemon)
    client = await _client(daemon.config.smtp.listen_tls, use_tls=True)
    await client.login(username, password)
    await client.sendmail(f"app@{TEST_DOMAIN}", ["x@dest.test"], OK_MESSAGE)
    await client.quit()
    assert await _count(daemon) == 1


async def test_auth_without_tls_is_refused_off_loopback_rules(daemon_factory) -> None:
    daemon = await daemon_factory(smtp={"plaintext_auth_on_loopback": False})
    username, password = await _login(daemon)
    client = await _client(daemon.config.smtp.listen, start_tls=False)
    await client.ehlo()
    token = base64.b64encode(f"\0{username}\0{password}".encode())
    code, _ = await client.execute_command(b"AUTH", b"PLAIN", token)
    assert code == 538
    await client.quit()


async def test_sending_from_a_domain_the_account_does_not_own_is_refused(daemon: Daemon) -> None:
    username, password = await _login(daemon)
    client = await _client(daemon.config.smtp.listen, start_tls=True)
    await client.login(username, password)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await client.sendmail("ceo@bank.test", ["x@dest.test"], OK_MESSAGE)
    assert refused.value.code == 550
    forged = OK_MESSAGE.replace(f"app@{TEST_DOMAIN}".encode(), b"ceo@bank.test")
    with pytest.raises(aiosmtplib.SMTPDataError) as rejected:
        await client.sendmail(f"app@{TEST_DOMAIN}", ["x@dest.test"], forged)
    assert rejected.value.code == 550 and "5.7.1" in rejected.value.message
    await client.quit()
    assert await _count(daemon) == 0


async def test_limits_give_the_right_replies_and_the_session_stays_usable(daemon: Daemon) -> None:
    username, password = await _login(daemon)
    client = await _client(daemon.config.smtp.listen, start_tls=True)
    await client.login(username, password)
    big = OK_MESSAGE + b"x" * 76 + b"\r\n" * 300 + (b"y" * 70 + b"\r\n") * 400
    with pytest.raises(aiosmtplib.SMTPResponseException) as too_big:
        await client.sendmail(f"app@{TEST_DOMAIN}", ["x@dest.test"], big)
    assert too_big.value.code == 552 and "5.3.4" in too_big.value.message
    no_from = b"To: x@dest.test\r\nSubject: t\r\n\r\nhi\r\n"
    with pytest.raises(aiosmtplib.SMTPDataError) as bad:
        await client.sendmail(f"app@{TEST_DOMAIN}", ["x@dest.test"], no_from)
    assert bad.value.code == 554
    recipients = [f"r{i}@dest.test" for i in range(5)]
    errors, _ = await client.sendmail(f"app@{TEST_DOMAIN}", recipients, OK_MESSAGE)
    assert {r: e.code for r, e in errors.items()} == {"r3@dest.test": 452, "r4@dest.test": 452}
    await client.quit()
    assert await _count(daemon) == 3  # the first three got the message
