# ruff: noqa: E501 -- the replies are quoted whole
"""Regenerates the Postfix bounces in this folder (not run by the tests; needs root and the
Debian `postfix` package): a private Postfix instance relays one message per case to a local
SMTP server that refuses (or defers) each recipient with a chosen reply; Postfix gives up at
once (maximal_queue_lifetime = 0) and sends its DSN back to the same server, which saves it.

    sudo .venv/bin/python tests/data/bounces/local/generate.py
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import subprocess
import time
from pathlib import Path

from aiosmtpd.controller import Controller

HERE = Path(__file__).resolve().parent
WORK = Path("/tmp/sendmill-bounce-corpus")

# local part -> (stage, reply). Replies are real providers' texts, as documented by them or
# seen in the wild; the DSNs that come back are what Postfix really writes around them.
CASES = {
    "unknown": (
        "RCPT",
        "550 5.1.1 <unknown@dest.test>: Recipient address rejected: User unknown in virtual mailbox table",
    ),
    "gmailunknown": (
        "RCPT",
        "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces.",
    ),
    "full": ("RCPT", "552 5.2.2 <full@dest.test>: Recipient address rejected: Mailbox full"),
    "quota4": ("RCPT", "452 4.2.2 The email account that you tried to reach is over quota."),
    "disabled": ("RCPT", "550 5.2.1 The email account that you tried to reach is disabled."),
    "blocked": (
        "RCPT",
        "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org",
    ),
    "spam": (
        "DATA",
        "550 5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
    ),
    "relay": ("RCPT", "554 5.7.1 <relay@dest.test>: Relay access denied"),
    "toobig": ("DATA", "552 5.3.4 Message size exceeds fixed limit"),
    "moved": ("RCPT", "551 5.1.6 User has moved; please try <moved@elsewhere.test>"),
    "virus": ("DATA", "554 5.7.1 Message rejected: virus detected (Eicar-Test-Signature)"),
    "ptr": (
        "RCPT",
        "550 5.7.25 [127.0.0.1] The IP address sending this message does not have a PTR record setup, or the corresponding forward DNS entry does not point to the sending IP.",
    ),
    "dmarc": (
        "DATA",
        "550 5.7.26 Unauthenticated email from dest.test is not accepted due to domain's DMARC policy.",
    ),
    "reputation": (
        "RCPT",
        "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
    ),
    "ratelimit": (
        "RCPT",
        "450 4.7.0 Too many emails sent in a short period; rate limit exceeded, try again later",
    ),
    "greylist": (
        "RCPT",
        "450 4.7.1 <greylist@dest.test>: Recipient address rejected: Greylisted, please try again in 300 seconds",
    ),
    "suspended": ("RCPT", "550 5.1.1 Recipient address rejected: this account has been suspended"),
    "office365": (
        "RCPT",
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [AM0PR01MB1234.eurprd01.prod.exchangelabs.com]",
    ),
    "systemerr": ("DATA", "451 4.3.0 Temporary local problem - please try later"),
    "policy": ("DATA", "550 5.7.1 Message rejected due to local policy"),
    "nomx": (
        "RCPT",
        "556 5.1.10 Recipient address rejected: Domain dest.test does not accept mail (nullMX)",
    ),
}


class Sink:
    async def handle_RCPT(self, server, session, envelope, address, options):
        case = CASES.get(address.partition("@")[0])
        if envelope.mail_from not in ("", "<>") and case and case[0] == "RCPT":
            return case[1]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if envelope.mail_from in ("", "<>"):  # a DSN coming back: keep it
            (WORK / f"dsn-{time.monotonic_ns()}.eml").write_bytes(envelope.original_content)
            return "250 2.0.0 saved"
        case = CASES.get(envelope.rcpt_tos[0].partition("@")[0])
        return case[1] if case else "250 2.0.0 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
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
    (conf / "master.cf").write_text("\n".join(master) + "\n")
    subprocess.run(["postconf", "-e", f"alternate_config_directories = {conf}"], check=True)
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
        for name in CASES:
            body = (
                f"From: Newsletter <news@sender.test>\r\nTo: {name}@dest.test\r\n"
                f"Subject: Sendmill corpus case {name}\r\n"
                f"Message-ID: <case-{name}@sender.test>\r\n\r\nHello {name}.\r\n"
            )
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
                smtp.sendmail(
                    "b+case-" + name + "@bounces.sender.test", [f"{name}@dest.test"], body
                )
        deadline = time.monotonic() + 60
        while len(list(WORK.glob("dsn-*.eml"))) < len(CASES) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        subprocess.run(["postfix", "-c", str(WORK / "conf"), "stop"], capture_output=True)
        sink.stop()
    for dsn in WORK.glob("dsn-*.eml"):
        data = dsn.read_bytes()
        for name in CASES:
            if f"<{name}@dest.test>".encode() in data:
                (HERE / f"postfix_{name}.eml").write_bytes(data)
                break
    print(f"{len(list(HERE.glob('postfix_*.eml')))} bounces in {HERE}")


if __name__ == "__main__":
    main()
