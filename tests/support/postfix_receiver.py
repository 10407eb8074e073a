"""A private Postfix instance that receives mail as an MX would, with an OpenDKIM milter that
verifies signatures and adds Authentication-Results, delivering every recipient into one
Maildir. Lives entirely in a test folder; the system instance is untouched except for listing
that folder in `alternate_config_directories`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_port


class PostfixReceiver:
    def __init__(self, host: str, port: int, domain: str) -> None:
        # Postfix's Unix sockets live under the queue directory and a socket path has at most
        # 107 bytes: keep the folder short rather than under pytest's deep temp path.
        self.folder = Path(tempfile.mkdtemp(prefix="pf", dir="/tmp"))
        self.host = host
        self.port = port
        self.domain = domain
        self.conf = self.folder / "conf"
        self.maildir = self.folder / "mail"
        self.test_keys = self.folder / "dkim-keys"
        self._milter: subprocess.Popen | None = None
        self._keys: list[str] = []

    def add_dkim_key(self, name: str, txt: str) -> None:
        """A public key OpenDKIM will use instead of asking DNS (its TestPublicKeys file)."""
        self._keys.append(f"{name} {txt}\n")

    def start(self) -> None:
        milter_port = free_port()
        self._write_config(milter_port)
        self.test_keys.write_text("".join(self._keys))
        opendkim_conf = self.folder / "opendkim.conf"
        opendkim_conf.write_text(
            f"Syslog no\nMode v\nSocket inet:{milter_port}@127.0.0.1\n"
            f"TestPublicKeys {self.test_keys}\nBackground no\nUserID root\n"
            "AlwaysAddARHeader yes\nAuthservID postfix.test\n"
        )
        self._milter = subprocess.Popen(
            ["opendkim", "-f", "-x", str(opendkim_conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port("127.0.0.1", milter_port)
        conf = str(self.conf)
        subprocess.run(["postconf", "-e", f"alternate_config_directories = {conf}"], check=True)
        subprocess.run(["postfix", "-c", conf, "set-permissions"], capture_output=True)
        subprocess.run(["postfix", "-c", conf, "check"], capture_output=True)
        # A fresh instance creates its queue directories on first start, which may then fail.
        for _ in range(3):
            started = subprocess.run(
                ["postfix", "-c", conf, "start"], capture_output=True, text=True
            )
            if started.returncode == 0:
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"postfix did not start: {started.stderr}\n{self.log()}")
        _wait_port(self.host, self.port)

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", str(self.conf), "stop"], capture_output=True)
        if self._milter is not None:
            self._milter.terminate()
            self._milter.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def messages(self) -> list[bytes]:
        """What Postfix delivered, oldest first."""
        new = self.maildir / "inbox" / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime)
        return [p.read_bytes() for p in files]

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def _write_config(self, milter_port: int) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        for sub in ("conf", "queue", "data", "mail"):
            (self.folder / sub).mkdir(parents=True)
        nobody = 65534
        os.chown(self.maildir, nobody, nobody)
        shutil.chown(self.folder / "data", "postfix")
        f = self.folder
        (self.conf / "main.cf").write_text(
            f"""compatibility_level = 3.6
queue_directory = {f}/queue
data_directory = {f}/data
# The smtpd service binds its own address in master.cf; Postfix would refuse 127.0.0.5 here
# because it is not an interface address, although loopback answers on all of 127/8.
inet_interfaces = all
inet_protocols = ipv4
myhostname = postfix.test
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtpd_milters = inet:127.0.0.1:{milter_port}
milter_default_action = tempfail
virtual_mailbox_domains = {self.domain}
virtual_mailbox_base = {self.maildir}
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{nobody}
virtual_gid_maps = static:{nobody}
virtual_minimum_uid = 100
alias_maps =
alias_database =
biff = no
smtpd_tls_security_level = none
maillog_file = {f}/maillog
maillog_file_prefixes = {f}
"""
        )
        master = []
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            fields = line.split()
            if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
                if fields[0] == "smtp" and fields[1] == "inet":
                    fields[0] = f"{self.host}:{self.port}"
                fields[4] = "n"  # no chroot: the private queue directory has no chroot files
                line = " ".join(fields)
            master.append(line)
        (self.conf / "master.cf").write_text("\n".join(master) + "\n")


def _wait_port(host: str, port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {host}:{port}")
