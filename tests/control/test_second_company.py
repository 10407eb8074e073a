"""The README's walkthrough of a second company, step by step (issue 14, point 7): create it
and its admin with the CLI, add its sending domain through the control API, publish the records
it returns (in the test DNS server, from their zone lines), verify, make an API key, send: the
message is delivered, signed d=<its domain>, and the signature verifies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import dkim
import httpx

from tests.support.daemon_process import write_config
from tests.support.delivery import dns_txt, wait_final
from tests.support.dnsstub import load_zone_lines

SENDMILL = str(Path(sys.executable).parent / "sendmill")
CHEAP = {"password_time_cost": 1, "password_memory_kib": 1024}


def _sendmill(config: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDMILL_")}
    done = subprocess.run(
        [SENDMILL, *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_second_company_sends_from_its_own_domain_as_the_readme_says(
    daemon_factory, dns_server, mx_factory, mx_port, database_url, tmp_path
) -> None:
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(control=CHEAP, domains={"refresh_interval": "0.2s"})
    config = write_config(
        tmp_path / "cli.toml",
        {
            "secret": "test-secret",
            "state_dir": str(tmp_path / "cli-state"),
            "database": {"url": database_url},
            "control": CHEAP,
        },
    )

    # 1. The company and its first user.
    _sendmill(config, "control", "create-company", "globex", "--code-prefix", "GLX")
    made = _sendmill(
        config, "control", "create-admin", "--company", "globex", "--email", "boss@globex.test"
    )
    password = made.split("password (shown once): ")[1].strip()

    async with httpx.AsyncClient(base_url=f"http://{daemon.config.control.listen}") as control:
        login = await control.post(
            "/api/auth/login", json={"email": "boss@globex.test", "password": password}
        )
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

        # 2. Its sending domain, through the API: the records come back.
        added = await control.post(
            "/api/sending-domains/", headers=auth, json={"domain": "globex.test"}
        )
        assert added.status_code == 201, added.text
        domain = added.json()
        assert domain["sendable"] is False

        # 3. Published as zone lines (what a DNS host's import takes), then verified.
        zone = "\n".join(r["zone_line"] for r in domain["records"])
        load_zone_lines(dns_server, zone)
        verified = await control.post(f"/api/sending-domains/{domain['id']}/verify/", headers=auth)
        assert verified.json()["sendable"] is True, verified.text
        statuses = {f["purpose"]: f["status"] for f in verified.json()["last_check"]}
        assert statuses == {
            "dkim": "correct",
            "spf": "correct",
            "dmarc": "correct",
            "bounce_mx": "correct",
            "tracking_cname": "correct",
        }

    # 4. An API key, and a message from the new domain.
    issued = _sendmill(config, "credentials", "create", "--company", "globex", "--kind", "api")
    key = issued.split("(shown once):")[1].strip()
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as api:
        sent = None
        for _ in range(30):  # the From check's answers are kept for 5 s
            sent = await api.post(
                "/api/v1/messages",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "from": "hello@globex.test",
                    "to": ["ann@dest.test"],
                    "subject": "Hi",
                    "text": "Welcome to Globex",
                },
            )
            if sent.status_code == 202:
                break
            await asyncio.sleep(0.5)
        assert sent is not None and sent.status_code == 202, sent.text

    rows = await wait_final(daemon, 1)
    assert rows[0]["state"] == "delivered"
    (received,) = mx.messages
    data = received.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert b"d=globex.test;" in data.replace(b"\r\n ", b"").replace(b" ", b"")
    assert await asyncio.to_thread(dkim.verify, data, dnsfunc=dns_txt(dns_server.port))
