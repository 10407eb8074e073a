"""Sendmill against peers we do not control: swaks and Postfix's smtp-source submit to it,
Postfix receives what it delivers, and two independent DKIM verifiers — OpenDKIM and Perl's
Mail::DKIM — check its RSA and Ed25519 signatures against the keys the stub DNS serves.

The Debian tools are installed on demand (tests/debian_tools.py) or the tests skip."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from mta import credentials, tenants
from mta.config import parse_hostport
from mta.daemon import Daemon
from mta.dkim import public_txt_record
from tests.support import debian_tools
from tests.support.fixtures_daemon import TEST_DOMAIN
from tests.support.postfix_receiver import PostfixReceiver

# Mail::DKIM verifying a message on stdin, asking the stub DNS server (port in argv) for keys.
MAIL_DKIM_VERIFY = r"""
use strict;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $ARGV[0], udp_timeout => 5, tcp_timeout => 5));
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (<STDIN>) { s/\015?\012$/\015\012/; $dkim->PRINT($_); }
$dkim->CLOSE;
foreach my $sig ($dkim->signatures) {
    print $sig->algorithm, " ", $sig->selector, " ", $sig->result, " ", $sig->result_detail, "\n";
}
"""


def _two_keys(tmp_path: Path) -> list[dict[str, Any]]:
    return [
        {
            "domain": TEST_DOMAIN,
            "company": "acme",
            "dkim": [
                {
                    "selector": "rsa1",
                    "key_file": str(tmp_path / "dkim" / "rsa1.pem"),
                    "algorithm": "rsa-sha256",
                },
                {
                    "selector": "ed1",
                    "key_file": str(tmp_path / "dkim" / "ed1.pem"),
                    "algorithm": "ed25519-sha256",
                },
            ],
        }
    ]


def _dkim_records(daemon: Daemon) -> dict[str, str]:
    return {
        f"{key.selector}._domainkey.{TEST_DOMAIN}": public_txt_record(
            Path(key.key_file), key.algorithm
        )
        for key in daemon.config.sending_domains[0].dkim
    }


async def _run(*command: str, stdin: bytes = b"", timeout: float = 60) -> tuple[int, str]:
    """Run a tool without blocking the event loop (the stub DNS and MX servers live in it)."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def _login(daemon: Daemon) -> tuple[str, str]:
    company = await tenants.ensure_company(daemon.db, "acme")
    issued = await credentials.create_smtp_login(daemon.db, company, f"peer{time.time_ns()}")
    return issued.login, issued.secret


async def _wait_states(daemon: Daemon, count: int, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        states = [r["state"] for r in await daemon.db.fetch("SELECT state::text FROM recipients")]
        done = [s for s in states if s in ("delivered", "bounced", "expired")]
        if len(done) >= count or time.monotonic() > deadline:
            return states
        await asyncio.sleep(0.1)


def _swaks(daemon: Daemon, *args: str) -> list[str]:
    host, port = parse_hostport(daemon.config.smtp.listen, 587, "smtp.listen")
    return ["swaks", "--server", f"{host}:{port}", "--helo", "client.test", *args]


@pytest.mark.slow
async def test_swaks_submits_with_starttls_and_auth_and_both_dkim_verifiers_pass(
    tmp_path, daemon_factory, dns_server, mx_factory, mx_port
) -> None:
    debian_tools.require("swaks", "opendkim", "perl:Mail::DKIM", "perl:Net::SSLeay")
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(sending_domains=_two_keys(tmp_path))
    records = _dkim_records(daemon)
    for name, txt in records.items():
        dns_server.add_txt(name, txt)
    user, password = await _login(daemon)

    for mechanism in ("PLAIN", "LOGIN"):
        code, out = await _run(
            *_swaks(daemon, "--tls", "--auth", mechanism, "--auth-user", user),
            # "=": a generated secret may begin with "-", which swaks would read as an option
            *(f"--auth-password={password}", "--from", f"app@{TEST_DOMAIN}"),
            *("--to", f"{mechanism.lower()}@dest.test", "--header", f"Subject: via {mechanism}"),
        )
        assert code == 0, out
        assert "250 2.0.0" in out
    assert await _wait_states(daemon, 2) == ["delivered", "delivered"]
    assert len(mx.messages) == 2

    keys = tmp_path / "opendkim-keys"
    keys.write_text("".join(f"{name} {txt}\n" for name, txt in records.items()))
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"Syslog no\nMode v\nTestPublicKeys {keys}\nBackground no\nUserID root\n")
    for received in mx.messages:
        assert received.tls
        _, verdicts = await _run(
            "perl", "-e", MAIL_DKIM_VERIFY, str(dns_server.port), stdin=received.data
        )
        lines = {line.split()[0]: line for line in verdicts.splitlines() if line}
        assert lines["rsa-sha256"].startswith("rsa-sha256 rsa1 pass"), verdicts
        # Debian 12's Mail::DKIM (1.20230212) predates its Ed25519 support; OpenDKIM checks it.
        ed = lines["ed25519-sha256"]
        assert ed.startswith("ed25519-sha256 ed1 pass") or "unsupported algorithm" in ed, verdicts
        message = tmp_path / "received.eml"
        message.write_bytes(received.data)
        _, report = await _run("opendkim", "-vvv", "-x", str(conf), "-t", str(message))
        assert "header.a=rsa-sha256 header.s=rsa1" in report, report
        assert report.count("dkim=pass") == 2, report
        assert "dkim=fail" not in report and "permerror" not in report


async def test_swaks_open_relay_and_bad_credential_probes_are_refused(
    daemon_factory, dns_server
) -> None:
    debian_tools.require("swaks", "perl:Net::SSLeay")
    daemon = await daemon_factory()
    user, _ = await _login(daemon)
    probes = {
        "unauthenticated to a foreign domain": ("--to", "victim@foreign.test"),
        "percent hack via the bounce domain": (
            "--to",
            f"victim%foreign.test@{daemon.config.bounce.domain}",
        ),
        "source route": ("--to", "@relay.test:victim@foreign.test"),
    }
    for probe, args in probes.items():
        code, out = await _run(*_swaks(daemon, "--tls", "--from", "spammer@foreign.test", *args))
        assert code != 0, f"{probe}: accepted\n{out}"
        assert re.search(r"^<[~*]\* +5\d\d ", out, re.M), f"{probe}: no 5xx refusal\n{out}"
    code, out = await _run(
        *_swaks(daemon, "--tls", "--auth", "PLAIN", "--auth-user", user),
        *("--auth-password", "wrong", "--from", f"app@{TEST_DOMAIN}", "--to", "x@dest.test"),
    )
    assert code != 0 and "535" in out, out
    code, out = await _run(
        *_swaks(daemon, "--tls", "--auth", "PLAIN", "--auth-user", user),
        *("--auth-password", "wrong", "--from", "ceo@foreign.test", "--to", "x@dest.test"),
    )
    assert code != 0
    assert await daemon.db.fetchval("SELECT count(*) FROM recipients") == 0


@pytest.mark.slow
async def test_smtp_source_from_a_trusted_network_is_delivered_in_full(
    daemon_factory, dns_server, mx_factory, mx_port
) -> None:
    debian_tools.require("smtp-source")
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(smtp={"trusted_networks": ["127.0.0.0/8"]})
    host, port = parse_hostport(daemon.config.smtp.listen, 587, "smtp.listen")
    code, out = await _run(
        "smtp-source",
        *("-s", "4", "-m", "40", "-l", "2048"),
        *("-f", f"app@{TEST_DOMAIN}", "-t", "sink@dest.test"),
        f"{host}:{port}",
    )
    assert code == 0, out
    assert (await _wait_states(daemon, 40)).count("delivered") == 40
    assert len(mx.messages) == 40


@pytest.mark.slow
async def test_delivery_into_postfix_passes_its_opendkim_milter(
    tmp_path, daemon_factory, dns_server, mx_port
) -> None:
    debian_tools.require("postfix", "opendkim")
    postfix = PostfixReceiver("127.0.0.5", mx_port, "postfix.test")
    dns_server.add_mx("postfix.test", [(10, "mx.postfix.test")])
    dns_server.add_a("mx.postfix.test", "127.0.0.5")
    daemon = await daemon_factory(sending_domains=_two_keys(tmp_path))
    for name, txt in _dkim_records(daemon).items():
        postfix.add_dkim_key(name, txt)
    await asyncio.to_thread(postfix.start)
    try:
        user, password = await _login(daemon)
        host, port = parse_hostport(daemon.config.smtp.listen, 587, "smtp.listen")
        message = (
            f"From: App <app@{TEST_DOMAIN}>\r\nTo: ann@postfix.test, bob@postfix.test\r\n"
            "Subject: into Postfix\r\n\r\nHello Postfix.\r\n"
        ).encode()
        async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False) as client:
            await client.login(user, password)
            await client.sendmail(
                f"app@{TEST_DOMAIN}", ["ann@postfix.test", "bob@postfix.test"], message
            )
        assert await _wait_states(daemon, 2) == ["delivered", "delivered"]
        deadline = time.monotonic() + 20
        while len(postfix.messages()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        delivered = postfix.messages()
        assert len(delivered) == 2, postfix.log()
        for data in delivered:
            head = data.split(b"\n\n", 1)[0].decode()
            assert "Authentication-Results: postfix.test" in head, head
            assert head.count("dkim=pass") == 2, head
            assert "Hello Postfix." in data.decode()
        replies = [
            r["last_reply"] for r in await daemon.db.fetch("SELECT last_reply FROM recipients")
        ]
        assert all(r.startswith("250") for r in replies), replies
    finally:
        await asyncio.to_thread(postfix.stop)
