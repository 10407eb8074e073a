"""Driving the daemon under test: submit over SMTP, wait for final states, serve its DKIM key
from the stub DNS, and look TXT records up in it the way dkimpy does."""

from __future__ import annotations

import asyncio
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import dns.message
import dns.query
import dns.rdatatype

from mta import credentials, tenants
from mta.config import parse_hostport
from mta.daemon import Daemon
from mta.dkim import public_txt_record
from tests.support.fixtures_daemon import TEST_DOMAIN


def message(to: list[str], subject: str = "Hello", sender: str = f"app@{TEST_DOMAIN}") -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = ", ".join(to)
    m["Subject"] = subject
    m["List-Unsubscribe"] = "<mailto:unsubscribe@example.test>"
    m.set_content("Hello from the end-to-end test.\n.leading dot line\n")
    return m.as_bytes().replace(b"\n", b"\r\n")


async def login(daemon: Daemon) -> tuple[str, str]:
    company = await tenants.ensure_company(daemon.db, "acme")
    issued = await credentials.create_smtp_login(daemon.db, company, f"app{time.time_ns()}")
    return issued.login, issued.secret


async def submit(daemon: Daemon, to: list[str], **kw: Any) -> str:
    username, password = await login(daemon)
    host, port = parse_hostport(daemon.config.smtp.listen, 587, "smtp.listen")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with aiosmtplib.SMTP(
        hostname=host, port=port, start_tls=True, tls_context=context, timeout=10
    ) as client:
        await client.login(username, password)
        errors, reply = await client.sendmail(f"app@{TEST_DOMAIN}", to, message(to, **kw))
    assert not errors
    return reply


async def wait_final(daemon: Daemon, count: int, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await daemon.db.fetch(
            "SELECT id, recipient, state::text, attempts, last_reply FROM recipients ORDER BY id"
        )
        final = [r for r in rows if r["state"] in ("delivered", "bounced", "expired")]
        if len(final) >= count or time.monotonic() > deadline:
            return [dict(r) for r in rows]
        await asyncio.sleep(0.1)


def serve_dkim_key(dns_server: Any, daemon: Daemon) -> None:
    key = daemon.config.sending_domains[0].dkim[0]
    dns_server.add_txt(
        f"{key.selector}._domainkey.{TEST_DOMAIN}",
        public_txt_record(Path(key.key_file), key.algorithm),
    )


def dns_txt(port: int):
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        query = dns.message.make_query(name.decode().rstrip("."), dns.rdatatype.TXT)
        answer = dns.query.tcp(query, "127.0.0.1", port=port, timeout=timeout)
        for rrset in answer.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return None

    return lookup
