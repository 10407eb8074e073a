"""The peer for bench/mta_throughput: Postfix relaying through an OpenDKIM milter (RSA-2048) to
the same sink, as a private Postfix instance in bench/out (the system instance is untouched
except for listing that directory in alternate_config_directories). Installs the Debian
packages when missing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import free_port, wait_port

OUT = Path(__file__).resolve().parent / "out" / "postfix"


def _install() -> bool:
    if shutil.which("postfix") and shutil.which("opendkim"):
        return True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "install", "-y", "-q", "postfix", "opendkim", "opendkim-tools"],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "postfix", "opendkim", "opendkim-tools"],
    ):
        subprocess.run(command, env=env, capture_output=True, timeout=600)
        if shutil.which("postfix") and shutil.which("opendkim"):
            return True
    return False


def _configure(smtp_port: int, sink_port: int, milter_port: int) -> Path:
    if OUT.exists():
        subprocess.run(["postfix", "-c", str(OUT / "conf"), "stop"], capture_output=True)
        shutil.rmtree(OUT)
    conf = OUT / "conf"
    conf.mkdir(parents=True)
    for name in ("queue", "data"):
        (OUT / name).mkdir()
    subprocess.run(["chown", "postfix", str(OUT / "data")], check=True)
    (conf / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {OUT}/queue
data_directory = {OUT}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench-postfix.test
mydestination =
relayhost = [127.0.0.1]:{sink_port}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_milters = inet:127.0.0.1:{milter_port}
non_smtpd_milters = $smtpd_milters
milter_default_action = tempfail
default_destination_concurrency_limit = 20
smtp_destination_concurrency_limit = 20
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = {OUT}/maillog
maillog_file_prefixes = {OUT}
"""
    )
    master = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{smtp_port}"
            fields[4] = "n"  # no chroot: the private queue directory has no chroot files
            line = " ".join(fields)
        master.append(line)
    (conf / "master.cf").write_text("\n".join(master) + "\n")
    subprocess.run(["postconf", "-e", f"alternate_config_directories = {conf}"], check=True)
    subprocess.run(["postfix", "-c", str(conf), "set-permissions"], capture_output=True)
    return conf


def _opendkim(milter_port: int) -> subprocess.Popen:
    key = OUT / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    conf = OUT / "opendkim.conf"
    conf.write_text(
        f"""Syslog no
Mode s
Socket inet:{milter_port}@127.0.0.1
Domain bench.test
Selector b1
KeyFile {key}
Canonicalization relaxed/relaxed
Background no
UserID root
RequireSafeKeys no
"""
    )
    return subprocess.Popen(["opendkim", "-f", "-x", str(conf)], stderr=subprocess.DEVNULL)


def run_postfix(
    messages: int,
    sessions: int,
    body: Callable[[int], bytes],
    submit: Callable,
    sink_code: str,
) -> float | None:
    """Postfix + OpenDKIM end-to-end delivered messages per second, or None if unavailable."""
    if os.geteuid() != 0 or not _install():
        print("postfix comparison skipped: needs root and the postfix/opendkim packages")
        return None
    smtp_port, sink_port, milter_port = free_port(), free_port(), free_port()
    conf = _configure(smtp_port, sink_port, milter_port)
    count_file = OUT / "sink.count"
    sink = subprocess.Popen(
        [sys.executable, "-c", sink_code, str(sink_port), str(count_file)],
        stdout=subprocess.PIPE,
    )
    milter = _opendkim(milter_port)
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
        wait_port(milter_port)
        # The first start of a fresh instance creates its queue directories and may fail
        # while doing so; a second start then succeeds.
        subprocess.run(["postfix", "-c", str(conf), "check"], capture_output=True)
        if subprocess.run(["postfix", "-c", str(conf), "start"], capture_output=True).returncode:
            subprocess.run(["postfix", "-c", str(conf), "start"], check=True, capture_output=True)
        wait_port(smtp_port)
        print(f"postfix: submitting {messages} messages over {sessions} sessions...")
        started = time.monotonic()
        accept_s = asyncio.run(submit(smtp_port, None, None, messages, sessions))
        delivered = 0
        while time.monotonic() - started < 900:
            try:
                delivered = int(count_file.read_text() or 0)
            except (FileNotFoundError, ValueError):
                delivered = 0
            if delivered >= messages:
                break
            time.sleep(0.2)
        total_s = time.monotonic() - started
        print(f"postfix: accepted {messages / accept_s:.1f}/s, {delivered} delivered")
        return round(delivered / total_s, 1)
    finally:
        subprocess.run(["postfix", "-c", str(conf), "stop"], capture_output=True)
        milter.terminate()
        sink.kill()
