# ruff: noqa: E501 -- the replies are quoted whole
"""Regenerates the Postfix bounces in this folder and their labels in ../expected.tsv (not run
by the tests; needs root and the Debian `postfix` package): a private Postfix instance relays
one message per case to local SMTP servers that refuse it at the case's stage (greeting, HELO,
MAIL, RCPT or DATA) with a chosen reply, or cannot be reached at all; Postfix gives up at once
(maximal_queue_lifetime = 0) and sends its DSN back to the sink, which saves it.

It runs in a throwaway network namespace with only loopback up, so nothing leaves the machine
(a name lookup fails at once instead of asking a resolver):

    sudo unshare -n sh -c 'ip link set lo up && .venv/bin/python tests/data/bounces/local/generate.py'
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import socketserver
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller

HERE = Path(__file__).resolve().parent
WORK = Path("/tmp/sendmill-bounce-corpus")
LABELS = HERE.parent / "expected.tsv"
SENDER_DOMAIN = "bounces.sender.test"


@dataclass(frozen=True)
class Case:
    stage: str  # CONN HELO MAIL RCPT DATA | REFUSED HANG NOHOST TLS
    reply: str
    reason: str  # the blind label (Sisimai's vocabulary)
    hard: str  # hard | soft

    @property
    def domain(self) -> str:
        """Cases that need their own route get their own recipient domain."""
        return "dest.test" if self.stage in ("MAIL", "RCPT", "DATA") else "path.test"


# local part -> Case. Replies are real providers' texts, as documented by them or seen in the
# wild; the DSNs that come back are what Postfix really writes around them. `reason` and `hard`
# are the labels, written from the reply and the stage by Sisimai's definitions of its reasons
# BEFORE our classifier was run on the bounces (blind); the generator copies them into
# ../expected.tsv with the provenance `blind-reply`.
# Stages: CONN (the greeting), HELO, MAIL, RCPT, DATA are refused with the reply by a local
# server; REFUSED (nothing listens), HANG (the server never greets), NOHOST (the name does not
# resolve) and TLS (TLS required, not offered) are failures of the path itself.
CASES = {
    "unknown": Case(
        "RCPT",
        "550 5.1.1 <unknown@dest.test>: Recipient address rejected: User unknown in virtual mailbox table",
        "userunknown",
        "hard",
    ),
    "gmailunknown": Case(
        "RCPT",
        "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.",
        "userunknown",
        "hard",
    ),
    "full": Case(
        "RCPT",
        "552 5.2.2 <full@dest.test>: Recipient address rejected: Mailbox full",
        "mailboxfull",
        "soft",
    ),
    "quota4": Case(
        "RCPT",
        "452 4.2.2 The email account that you tried to reach is over quota.",
        "mailboxfull",
        "soft",
    ),
    "disabled": Case(
        "RCPT",
        "550 5.2.1 The email account that you tried to reach is disabled.",
        "suspend",
        "soft",
    ),
    "blocked": Case(
        "RCPT",
        "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org",
        "blocked",
        "soft",
    ),
    "spam": Case(
        "DATA",
        "550 5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
        "spamdetected",
        "soft",
    ),
    "relay": Case(
        "RCPT",
        "554 5.7.1 <relay@dest.test>: Relay access denied",
        "norelaying",
        "soft",
    ),
    "toobig": Case(
        "DATA",
        "552 5.3.4 Message size exceeds fixed limit",
        "mesgtoobig",
        "soft",
    ),
    "moved": Case(
        "RCPT",
        "551 5.1.6 User has moved; please try <moved@elsewhere.test>",
        "hasmoved",
        "hard",
    ),
    "virus": Case(
        "DATA",
        "554 5.7.1 Message rejected: virus detected (Eicar-Test-Signature)",
        "virusdetected",
        "soft",
    ),
    "ptr": Case(
        "RCPT",
        "550 5.7.25 [127.0.0.1] The IP address sending this message does not have a PTR record setup, or the corresponding forward DNS entry does not point to the sending IP.",
        "requireptr",
        "soft",
    ),
    "dmarc": Case(
        "DATA",
        "550 5.7.26 Unauthenticated email from dest.test is not accepted due to domain's DMARC policy.",
        "authfailure",
        "soft",
    ),
    "reputation": Case(
        "RCPT",
        "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
        "badreputation",
        "soft",
    ),
    "ratelimit": Case(
        "RCPT",
        "450 4.7.0 Too many emails sent in a short period; rate limit exceeded, try again later",
        "speeding",
        "soft",
    ),
    "greylist": Case(
        "RCPT",
        "450 4.7.1 <greylist@dest.test>: Recipient address rejected: Greylisted, please try again in 300 seconds",
        "blocked",
        "soft",
    ),
    "suspended": Case(
        "RCPT",
        "550 5.1.1 Recipient address rejected: this account has been suspended",
        "suspend",
        "soft",
    ),
    "office365": Case(
        "RCPT",
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [AM0PR01MB1234.eurprd01.prod.exchangelabs.com]",
        "userunknown",
        "hard",
    ),
    "systemerr": Case(
        "DATA",
        "451 4.3.0 Temporary local problem - please try later",
        "systemerror",
        "soft",
    ),
    "policy": Case(
        "DATA",
        "550 5.7.1 Message rejected due to local policy",
        "policyviolation",
        "soft",
    ),
    "nomx": Case(
        "RCPT",
        "556 5.1.10 Recipient address rejected: Domain dest.test does not accept mail (nullMX)",
        "notaccept",
        "hard",
    ),
    "conn_blocked": Case(
        "CONN",
        "554 5.7.1 mx.dest.test: Service unavailable; client [127.0.0.1] blocked using zen.spamhaus.org",
        "blocked",
        "soft",
    ),
    "conn_busy": Case(
        "CONN",
        "421 4.3.2 Service not available, closing transmission channel",
        "notaccept",
        "soft",
    ),
    "helo_rejected": Case(
        "HELO",
        "550 5.7.1 <mx.sender.test>: Helo command rejected: Host not found",
        "blocked",
        "soft",
    ),
    "mail_domain": Case(
        "MAIL",
        "553 5.1.8 <b+case-mail_domain@bounces.sender.test>: Sender address rejected: Domain not found",
        "rejected",
        "soft",
    ),
    "mail_unknown": Case(
        "MAIL",
        "550 5.1.0 <b+case-mail_unknown@bounces.sender.test>: Sender address rejected: User unknown in local recipient table",
        "rejected",
        "soft",
    ),
    "mail_size": Case(
        "MAIL",
        "552 5.3.4 Message size exceeds fixed limit",
        "mesgtoobig",
        "soft",
    ),
    "mail_notverified": Case(
        "MAIL",
        "554 5.7.1 Message rejected: Email address is not verified.",
        "rejected",
        "soft",
    ),
    "rcpt_nostatus": Case(
        "RCPT",
        "550 Unknown user",
        "userunknown",
        "hard",
    ),
    "rcpt_toomany": Case(
        "RCPT",
        "452 4.5.3 Too many recipients",
        "toomanyconn",
        "soft",
    ),
    "rcpt_mailboxdisabled": Case(
        "RCPT",
        "550 5.2.1 Mailbox disabled, not accepting messages",
        "suspend",
        "soft",
    ),
    "rcpt_nosuchdomain": Case(
        "RCPT",
        "550 5.1.2 <rcpt_nosuchdomain@dest.test>: Recipient address rejected: Domain not found",
        "hostunknown",
        "hard",
    ),
    "data_unknown": Case(
        "DATA",
        "550 Unknown user data_unknown@dest.test",
        "filtered",
        "soft",
    ),
    "data_full": Case(
        "DATA",
        "552 5.2.2 Mailbox full",
        "mailboxfull",
        "soft",
    ),
    "data_content": Case(
        "DATA",
        "554 5.6.0 Message content rejected: malformed MIME",
        "contenterror",
        "soft",
    ),
    "data_spamscore": Case(
        "DATA",
        "550 5.7.1 Message rejected as spam by Content Filtering.",
        "spamdetected",
        "soft",
    ),
    "refused": Case(
        "REFUSED",
        "",
        "expired",
        "soft",
    ),
    "hang": Case(
        "HANG",
        "",
        "networkerror",
        "soft",
    ),
    # Labelled hostunknown/hard before generation; the namespace has no resolver, so Postfix
    # reports a temporary name-service failure (4.4.3 "Host not found, try again"): relabelled
    # networkerror/soft after reading that bounce, before our classifier was run on it.
    "nohost": Case(
        "NOHOST",
        "",
        "networkerror",
        "soft",
    ),
    "tls": Case(
        "TLS",
        "",
        "securityerror",
        "soft",
    ),
}


class Sink:
    """The receiving MX for MAIL, RCPT and DATA cases, and where the DSNs come back."""

    async def handle_MAIL(self, server, session, envelope, address, options):
        case = CASES.get(address.partition("@")[0].removeprefix("b+case-"))
        if case and case.stage == "MAIL":
            return case.reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        case = CASES.get(address.partition("@")[0])
        if envelope.mail_from not in ("", "<>") and case and case.stage == "RCPT":
            return case.reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if envelope.mail_from in ("", "<>"):  # a DSN coming back: keep it
            (WORK / f"dsn-{time.monotonic_ns()}.eml").write_bytes(envelope.original_content)
            return "250 2.0.0 saved"
        case = CASES.get(envelope.rcpt_tos[0].partition("@")[0])
        return case.reply if case and case.stage == "DATA" else "250 2.0.0 OK"


class Scripted(socketserver.StreamRequestHandler):
    """A server that refuses at the greeting (CONN), refuses HELO/EHLO, or never greets."""

    case: Case

    def handle(self) -> None:
        if self.case.stage == "HANG":
            time.sleep(8)
            return
        if self.case.stage == "CONN":
            self.wfile.write(self.case.reply.encode() + b"\r\n")
            return
        self.wfile.write(b"220 mx.path.test ESMTP\r\n")
        for line in self.rfile:
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(self.case.reply.encode() + b"\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 2.0.0 Bye\r\n")
                return
            else:
                self.wfile.write(b"503 5.5.1 Bad sequence of commands\r\n")


def _scripted(case: Case) -> int:
    handler = type("Handler", (Scripted,), {"case": case})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _routes(sink_port: int) -> str:
    """transport_maps: one route per path case (its recipient address), else the sink."""
    routes = []
    for name, case in CASES.items():
        address = f"{name}@{case.domain}"
        if case.stage in ("CONN", "HELO", "HANG"):
            routes.append(f"{address}=smtp:[127.0.0.1]:{_scripted(case)}")
        elif case.stage == "REFUSED":
            routes.append(f"{address}=smtp:[127.0.0.1]:{_free_port()}")  # nothing listens
        elif case.stage == "NOHOST":
            routes.append(f"{address}=smtp:[mx.nohost.invalid]")
        elif case.stage == "TLS":
            routes.append(f"{address}=smtp-tls:[127.0.0.1]:{sink_port}")
    return "inline:{" + ", ".join(routes) + "}"


def _postfix(conf: Path, smtp_port: int, sink_port: int) -> None:
    conf.mkdir(parents=True)
    for name in ("queue", "data"):
        (WORK / name).mkdir()
    subprocess.run(["chown", "postfix", str(WORK / "data")], check=True)
    (conf / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {WORK}/queue
data_directory = {WORK}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.sender.test
mydestination =
relayhost = [127.0.0.1]:{sink_port}
transport_maps = {_routes(sink_port)}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
smtp_connect_timeout = 3s
smtp_helo_timeout = 3s
alias_maps =
alias_database =
local_recipient_maps =
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = {WORK}/maillog
maillog_file_prefixes = {WORK}
"""
    )
    master = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{smtp_port}"
            fields[4] = "n"
            line = " ".join(fields)
        master.append(line)
    # A client that insists on TLS, which the sink does not offer (the TLS case).
    master.append("smtp-tls unix - - n - - smtp -o smtp_tls_security_level=encrypt")
    (conf / "master.cf").write_text("\n".join(master) + "\n")
    subprocess.run(["postfix", "-c", str(conf), "set-permissions"], capture_output=True)
    subprocess.run(["postfix", "-c", str(conf), "check"], capture_output=True)
    # A fresh instance's first starts may fail while it creates its queue directories.
    for _ in range(5):
        if not subprocess.run(
            ["postfix", "-c", str(conf), "start"], capture_output=True
        ).returncode:
            return
        time.sleep(1)
    raise RuntimeError("postfix did not start")


def _write_labels(written: set[str]) -> None:
    """Replace the local/postfix_* rows of expected.tsv with the cases' blind labels."""
    lines = [
        line
        for line in LABELS.read_text(encoding="utf-8").splitlines()
        if not line.startswith("local/postfix_")
    ]
    for name, case in CASES.items():
        if name in written:
            recipient = f"{name}@{case.domain}"
            lines.append(
                f"local/postfix_{name}.eml\t{recipient}\t{case.reason}\t{case.hard}\tblind-reply"
            )
    LABELS.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    if WORK.exists():
        subprocess.run(["postfix", "-c", str(WORK / "conf"), "stop"], capture_output=True)
        shutil.rmtree(WORK)
    WORK.mkdir()
    smtp_port, sink_port = _free_port(), _free_port()
    sink = Controller(Sink(), hostname="127.0.0.1", port=sink_port)
    sink.start()
    _postfix(WORK / "conf", smtp_port, sink_port)
    try:
        time.sleep(2)
        for name, case in CASES.items():
            body = (
                f"From: Newsletter <news@sender.test>\r\nTo: {name}@{case.domain}\r\n"
                f"Subject: Sendmill corpus case {name}\r\n"
                f"Message-ID: <case-{name}@sender.test>\r\n\r\nHello {name}.\r\n"
            )
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
                smtp.sendmail(f"b+case-{name}@{SENDER_DOMAIN}", [f"{name}@{case.domain}"], body)
        deadline = time.monotonic() + 90
        while len(list(WORK.glob("dsn-*.eml"))) < len(CASES) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        subprocess.run(["postfix", "-c", str(WORK / "conf"), "stop"], capture_output=True)
        sink.stop()
    written = set()
    for dsn in WORK.glob("dsn-*.eml"):
        data = dsn.read_bytes()
        for name, case in CASES.items():
            if f"<{name}@{case.domain}>".encode() in data:
                (HERE / f"postfix_{name}.eml").write_bytes(data)
                written.add(name)
                break
    _write_labels(written)
    missing = sorted(set(CASES) - written)
    print(f"{len(written)} bounces in {HERE}; no bounce for: {', '.join(missing) or 'none'}")


if __name__ == "__main__":
    main()
