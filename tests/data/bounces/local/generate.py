# ruff: noqa: E501 -- the replies are quoted whole
"""Regenerates the bounces in this folder and their labels in ../expected.tsv (not run by the
tests; needs root, the Debian `postfix` package, and for Exim the Debian archive reachable by
apt-get): a private instance of each MTA relays one message per case to local SMTP servers that
refuse it at the case's stage (greeting, HELO, MAIL, RCPT or DATA) with a chosen reply, or
cannot be reached at all; the MTA gives up at once and sends its bounce back to the sink, which
saves it as `<mta>_<case>.eml`.

- Postfix 3.7, the installed package, with its own configuration directory.
- Exim 4.96 (Debian's exim4-daemon-light, which would replace Postfix if installed): unpacked
  from its .deb with `apt-get download` + `dpkg -x` into the work directory and run from there,
  with the `Debian-exim` user it was built for added to a private copy of /etc/passwd that is
  bind-mounted in this namespace only.

The MTAs run in a throwaway mount and network namespace with only loopback up (the script
enters it itself, after fetching Exim's packages), so nothing leaves the machine and no system
file changes; a name lookup fails at once instead of asking a resolver:

    sudo .venv/bin/python tests/data/bounces/local/generate.py [postfix] [exim]
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller

HERE = Path(__file__).resolve().parent
WORK = Path("/tmp/sendmill-bounce-corpus")
LABELS = HERE.parent / "expected.tsv"
DEBS = Path("/tmp/sendmill-bounce-debs")
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
        if envelope.mail_from in ("", "<>"):  # a bounce coming back to b+case-NAME: keep it
            name = envelope.rcpt_tos[0].partition("@")[0].removeprefix("b+case-")
            (WORK / f"dsn-{name}.eml").write_bytes(envelope.original_content)
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


def _path_routes(sink_port: int) -> dict[str, tuple[str, int, bool]]:
    """Where each path case's recipient is sent: local part -> (host, port, TLS required)."""
    routes = {}
    for name, case in CASES.items():
        if case.stage in ("CONN", "HELO", "HANG"):
            routes[name] = ("127.0.0.1", _scripted(case), False)
        elif case.stage == "REFUSED":
            routes[name] = ("127.0.0.1", _free_port(), False)  # nothing listens
        elif case.stage == "NOHOST":
            routes[name] = ("mx.nohost.invalid", 25, False)
        elif case.stage == "TLS":
            routes[name] = ("127.0.0.1", sink_port, True)
    return routes


def _postfix_routes(sink_port: int) -> str:
    """transport_maps: one route per path case (its recipient address), else the sink."""
    routes = []
    for name, (host, port, tls) in _path_routes(sink_port).items():
        transport = "smtp-tls" if tls else "smtp"
        routes.append(f"{name}@path.test={transport}:[{host}]:{port}")
    return "inline:{" + ", ".join(routes) + "}"


def _postfix(smtp_port: int, sink_port: int) -> Callable[[], None]:
    """Start a private Postfix listening on smtp_port; returns how to stop it."""
    conf = WORK / "conf"
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
transport_maps = {_postfix_routes(sink_port)}
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
            return lambda: subprocess.run(["postfix", "-c", str(conf), "stop"], check=False)
        time.sleep(1)
    raise RuntimeError("postfix did not start")


EXIM_CONF = """exim_path = {work}/root/usr/sbin/exim4
primary_hostname = mx.sender.test
qualify_domain = sender.test
spool_directory = {work}/spool
log_file_path = {work}/log/%slog
pid_file_path = {work}/exim.pid
daemon_smtp_ports = {smtp_port}
local_interfaces = 127.0.0.1
acl_smtp_rcpt = accept_all
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
delay_warning =
ignore_bounce_errors_after = 0s
timeout_frozen_after = 1m

begin acl
accept_all:
  accept

begin routers
path_cases:
  driver = manualroute
  domains = path.test
  route_data = ${{lookup{{$local_part}}lsearch{{{work}/hosts}}}}
  transport = remote_smtp
  self = send
to_sink:
  driver = manualroute
  route_list = * 127.0.0.1
  transport = remote_smtp
  self = send

begin transports
remote_smtp:
  driver = smtp
  port = ${{lookup{{$local_part}}lsearch{{{work}/ports}}{{$value}}{{{sink_port}}}}}
  hosts_require_tls = ${{lookup{{$local_part}}lsearch{{{work}/tls}}{{$value}}{{}}}}
  connect_timeout = 3s
  command_timeout = 3s
  allow_localhost

begin retry
* * F,2s,1s
"""


def _exim(smtp_port: int, sink_port: int) -> Callable[[], None]:
    """Unpack Debian's Exim into the work directory, start it on smtp_port (queue runs every
    second, so a deferral turns into a bounce within seconds); returns how to stop it."""
    work = WORK / "exim"
    root = work / "root"
    for sub in ("spool", "log", "root"):
        (work / sub).mkdir(parents=True)
    for deb in DEBS.glob("*.deb"):  # fetched by main() before the network went away
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    # The user Debian's build names, in a private passwd seen by this mount namespace only.
    for name, line in (("passwd", "Debian-exim:x:990:990::/nonexistent:/usr/sbin/nologin"),
                       ("group", "Debian-exim:x:990:")):  # fmt: skip
        private = work / name
        private.write_text(Path(f"/etc/{name}").read_text() + line + "\n")
        subprocess.run(["mount", "--bind", str(private), f"/etc/{name}"], check=True)
    routes = _path_routes(sink_port)
    (work / "hosts").write_text("".join(f"{n}: {h}\n" for n, (h, _, _) in routes.items()))
    (work / "ports").write_text("".join(f"{n}: {p}\n" for n, (_, p, _) in routes.items()))
    (work / "tls").write_text("".join(f"{n}: *\n" for n, (_, _, t) in routes.items() if t))
    conf = work / "exim.conf"
    conf.write_text(EXIM_CONF.format(work=work, smtp_port=smtp_port, sink_port=sink_port))
    subprocess.run(["chown", "-R", "990:990", str(work / "spool"), str(work / "log")], check=True)
    # Its libidn.so.12, found through a private linker cache (Exim re-executes itself with a
    # clean environment, so LD_LIBRARY_PATH would not reach the deliveries).
    cache = work / "ld.so.cache"
    lib = root / "usr/lib/x86_64-linux-gnu"
    subprocess.run(["ldconfig", "-C", str(cache), "-f", "/etc/ld.so.conf", str(lib)], check=True)
    subprocess.run(["mount", "--bind", str(cache), "/etc/ld.so.cache"], check=True)
    daemon = subprocess.Popen([str(root / "usr/sbin/exim4"), "-C", str(conf), "-bdf", "-q1s"])
    return lambda: (daemon.terminate(), daemon.wait(10))


def _write_labels(written: dict[str, set[str]]) -> None:
    """Replace the rows of the regenerated MTAs' files in expected.tsv with the cases' labels."""
    prefixes = tuple(f"local/{mta}_" for mta in written)
    lines = [
        line
        for line in LABELS.read_text(encoding="utf-8").splitlines()
        if not line.startswith(prefixes)
    ]
    for mta, names in written.items():
        for name, case in CASES.items():
            if name in names:
                lines.append(
                    f"local/{mta}_{name}.eml\t{name}@{case.domain}\t{case.reason}\t{case.hard}"
                    "\tblind-reply"
                )
    LABELS.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _unpack(packages: tuple[str, ...], into: Path) -> Path:
    """Unpack the fetched .debs of `packages` into `into`; a private linker cache that also
    finds their libraries is returned (bind-mounted over /etc/ld.so.cache by the caller)."""
    for deb in DEBS.glob("*.deb"):  # fetched by main() before the network went away
        if deb.name.startswith(packages):
            subprocess.run(["dpkg", "-x", str(deb), str(into)], check=True)
    cache = into.parent / "ld.so.cache"
    lib = into / "usr/lib/x86_64-linux-gnu"
    subprocess.run(["ldconfig", "-C", str(cache), "-f", "/etc/ld.so.conf", str(lib)], check=True)
    return cache


def _private_users(work: Path, users: dict[str, int]) -> list[str]:
    """Shell commands that bind-mount copies of /etc/passwd and /etc/group with `users` added."""
    commands = []
    for name in ("passwd", "group"):
        lines = Path(f"/etc/{name}").read_text()
        for user, uid in users.items():
            lines += (
                f"{user}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n"
                if name == "passwd"
                else f"{user}:x:{uid}:\n"
            )
        (work / name).write_text(lines)
        commands.append(f"mount --bind {work / name} /etc/{name}")
    return commands


OPENSMTPD_CONF = """queue ttl 4s
listen on 127.0.0.1 port {smtp_port}
{actions}
action "sink" relay host smtp://127.0.0.1:{sink_port}
{matches}
match from any for any action "sink"
"""


def _opensmtpd(smtp_port: int, sink_port: int) -> Callable[[], None]:
    """Unpack Debian's OpenSMTPD and start it on smtp_port in a nested mount namespace that
    gives it its users, its spool (/var/spool/smtpd) and its chroot (/var/lib/opensmtpd/empty)
    as private directories; returns how to stop it."""
    work = WORK / "opensmtpd"
    (work / "var/spool").mkdir(parents=True)
    (work / "var/lib/opensmtpd/empty").mkdir(parents=True)
    cache = _unpack(("opensmtpd",), work / "root")
    actions, matches = [], []
    for name, (host, port, tls) in _path_routes(sink_port).items():
        scheme = "smtp+tls" if tls else "smtp"
        actions.append(f'action "{name}" relay host {scheme}://{host}:{port}')
        matches.append(f'match from any for rcpt-to "{name}@path.test" action "{name}"')
    conf = work / "smtpd.conf"
    conf.write_text(
        OPENSMTPD_CONF.format(
            smtp_port=smtp_port,
            sink_port=sink_port,
            actions="\n".join(actions),
            matches="\n".join(matches),
        )
    )
    setup = [
        *_private_users(work, {"opensmtpd": 991, "opensmtpq": 992}),
        f"mount --bind {cache} /etc/ld.so.cache",
        f"mount --bind {work / 'var/spool'} /var/spool",
        f"mount --bind {work / 'var/lib'} /var/lib",
        f"exec {work / 'root/usr/sbin/smtpd'} -d -f {conf}",
    ]
    daemon = subprocess.Popen(["unshare", "--mount", "sh", "-c", " && ".join(setup)])
    return lambda: (daemon.terminate(), daemon.wait(10))


MTAS: dict[str, Callable[[int, int], Callable[[], None]]] = {
    "postfix": _postfix,
    "exim": _exim,
    "opensmtpd": _opensmtpd,
}


def main() -> None:
    """Outside the namespace: fetch what Exim needs, then run again inside a fresh one."""
    if "--inside" in sys.argv:
        return _inside([a for a in sys.argv[1:] if a != "--inside"] or list(MTAS))
    chosen = sys.argv[1:] or list(MTAS)
    if "exim" in chosen:
        DEBS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["apt-get", "download", "exim4-daemon-light", "libidn12"], cwd=DEBS, check=True
        )
    if "opensmtpd" in chosen:
        DEBS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "opensmtpd"], cwd=DEBS, check=True)
    inside = f"ip link set lo up && exec {sys.executable} {__file__} --inside {' '.join(chosen)}"
    subprocess.run(["unshare", "--mount", "--net", "sh", "-c", inside], check=True)


def _inside(chosen: list[str]) -> None:
    written: dict[str, set[str]] = {}
    for mta in chosen:
        written[mta] = _generate(mta)
    _write_labels(written)
    for mta, names in written.items():
        missing = sorted(set(CASES) - names)
        print(f"{mta}: {len(names)} bounces; no bounce for: {', '.join(missing) or 'none'}")


def _generate(mta: str) -> set[str]:
    if WORK.exists():
        subprocess.run(["postfix", "-c", str(WORK / "conf"), "stop"], capture_output=True)
        shutil.rmtree(WORK)
    WORK.mkdir()
    smtp_port, sink_port = _free_port(), _free_port()
    sink = Controller(Sink(), hostname="127.0.0.1", port=sink_port)
    sink.start()
    stop = MTAS[mta](smtp_port, sink_port)
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
        stop()
        sink.stop()
    written = set()
    for name in CASES:
        dsn = WORK / f"dsn-{name}.eml"
        if dsn.exists():
            (HERE / f"{mta}_{name}.eml").write_bytes(dsn.read_bytes())
            written.add(name)
    return written


if __name__ == "__main__":
    main()
