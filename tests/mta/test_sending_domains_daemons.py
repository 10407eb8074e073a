"""Two daemons on one database take a sending domain added at run time without a restart:
both accept mail From it once its DKIM record verifies, and sign it with its key (issue 14)."""

from __future__ import annotations

import asyncio
import time

import dkim
import httpx

from mta import credentials, tenants
from mta.domain_keys import KeySeal
from mta.sending_domains import DomainManager
from tests.support.delivery import dns_txt, wait_final
from tests.support.sending_domains import publish


async def _send(daemon, key: str, sender: str, to: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        return await client.post(
            "/api/v1/messages",
            headers={"Authorization": f"Bearer {key}"},
            json={"from": sender, "to": [to], "subject": "Hi", "text": "Hello"},
        )


async def test_two_daemons_send_from_a_domain_added_and_verified_while_they_run(
    daemon_factory, dns_server, mx_factory, mx_port, tmp_path
) -> None:
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    settings = {"domains": {"refresh_interval": "0.2s"}}
    one = await daemon_factory(state_dir=str(tmp_path / "one"), **settings)
    two = await daemon_factory(state_dir=str(tmp_path / "two"), **settings)
    company = await tenants.ensure_company(one.db, "globex")
    key = (await credentials.create_api_key(one.db, company)).secret

    refused = await _send(one, key, "hi@globex.test", "a@dest.test")
    assert refused.status_code == 403, refused.text

    manager = DomainManager(one.db, one.config, KeySeal(b"test-secret"))
    view = await manager.add(company, "globex.test")
    publish(dns_server, view["records"], purposes={"dkim"})
    assert (await manager.verify(company, "globex.test"))["sendable"]

    deadline = time.monotonic() + 10  # the From check's answers are kept 5 s
    accepted = {}
    for daemon, to in ((one, "a@dest.test"), (two, "b@dest.test")):
        while True:
            response = await _send(daemon, key, "hi@globex.test", to)
            if response.status_code == 202 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        accepted[to] = response.status_code
    assert accepted == {"a@dest.test": 202, "b@dest.test": 202}

    rows = await wait_final(one, 2)
    assert [r["state"] for r in rows] == ["delivered", "delivered"]
    selector = view["dkim_keys"][0]["selector"]
    for received in mx.messages:
        data = received.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert f"s={selector};".encode() in data.replace(b" ", b"").replace(b"\r\n", b"")
        verified = await asyncio.to_thread(dkim.verify, data, dnsfunc=dns_txt(dns_server.port))
        assert verified, "DKIM does not verify"
