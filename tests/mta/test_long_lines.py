"""Body lines over 998 characters are re-encoded, not refused (issue 14): the part becomes
quoted-printable (text) or base64, its decoded bytes unchanged, and the delivered message's DKIM
signature verifies with stock dkimpy."""

from __future__ import annotations

import asyncio
import email
import ssl
from email.message import EmailMessage

import aiosmtplib
import dkim

from mta.config import parse_hostport
from mta.long_lines import longest_line, reencode
from tests.support.delivery import dns_txt, login, serve_dkim_key, wait_final
from tests.support.fixtures_daemon import TEST_DOMAIN

HTML = "<p>" + "Ünïcode café " * 400 + "</p>"  # one line of ~5,000 characters


def _multipart() -> bytes:
    m = EmailMessage()
    m["From"] = f"app@{TEST_DOMAIN}"
    m["To"] = "rcpt@dest.test"
    m["Subject"] = "long lines"
    m.set_content("short text part\n")
    m.add_alternative(HTML, subtype="html", cte="8bit")
    m.add_attachment(b"a,b\n" + b"1," * 700 + b"\n", maintype="text", subtype="csv", cte="7bit")
    return m.as_bytes().replace(b"\n", b"\r\n")


def test_only_the_parts_with_long_lines_are_re_encoded_and_decode_to_the_same_bytes() -> None:
    original = _multipart()
    assert longest_line(original) > 998
    out = reencode(original)
    assert longest_line(out) <= 998
    before = [p for p in email.message_from_bytes(original).walk() if not p.is_multipart()]
    after = [p for p in email.message_from_bytes(out).walk() if not p.is_multipart()]
    assert [p["Content-Transfer-Encoding"] for p in after] == [
        "7bit",
        "quoted-printable",
        "quoted-printable",
    ]
    for old, new in zip(before, after, strict=True):
        assert new.get_payload(decode=True).replace(b"\r\n", b"\n") == old.get_payload(
            decode=True
        ).replace(b"\r\n", b"\n")
    short = b"From: a@b.test\r\nSubject: s\r\n\r\nhello\r\n"
    assert reencode(short) is short


async def test_a_long_line_submission_is_delivered_signed_and_verifies(
    daemon_factory, dns_server, mx_factory, mx_port
) -> None:
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    serve_dkim_key(dns_server, daemon)
    username, password = await login(daemon)
    host, port = parse_hostport(daemon.config.smtp.listen, 587, "smtp.listen")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with aiosmtplib.SMTP(
        hostname=host, port=port, start_tls=True, tls_context=context, timeout=10
    ) as client:
        await client.login(username, password)
        errors, _ = await client.sendmail(f"app@{TEST_DOMAIN}", ["rcpt@dest.test"], _multipart())
    assert not errors
    rows = await wait_final(daemon, 1)
    assert rows[0]["state"] == "delivered"
    (received,) = mx.messages
    data = received.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert longest_line(data) <= 998
    assert await asyncio.to_thread(dkim.verify, data, dnsfunc=dns_txt(dns_server.port))
    html = next(
        p for p in email.message_from_bytes(data).walk() if p.get_content_type() == "text/html"
    )
    assert html.get_payload(decode=True).decode().strip() == HTML
