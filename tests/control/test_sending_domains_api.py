"""/api/sending-domains/ (issue 14): a company adds its sending domain, publishes the records
it is given, verifies them against the (stub) DNS and may then use it for sender profiles;
settings permission; another company's domain is not there for it."""

from __future__ import annotations

import pytest

from tests.support.sending_domains import dkim_records, findings, publish


@pytest.fixture
async def api(make_control, dns_server):
    return await make_control(
        config={
            "hostname": "mta1.sendmill.test",
            "dns": {"resolvers": [f"127.0.0.1:{dns_server.port}"], "timeout": "2s"},
        }
    )


async def test_a_company_adds_publishes_verifies_and_then_sends_from_its_domain(
    api, dns_server
) -> None:
    company = await api.company()
    admin = await api.user(company)
    c, h = api.client, admin.auth

    added = await c.post("/api/sending-domains/", headers=h, json={"domain": "news.globex.test"})
    assert added.status_code == 201, added.text
    domain = added.json()
    assert domain["sendable"] is False and domain["origin"] == "api"
    url = f"/api/sending-domains/{domain['id']}/"
    profile = {"profile_name": "News", "from_address": "hello@news.globex.test"}
    refused = await c.post("/api/sender-profiles/", headers=h, json=profile)
    assert refused.status_code == 422, refused.text

    verify = await c.post(url + "verify/", headers=h)
    assert verify.status_code == 200, verify.text
    (record,) = dkim_records(verify.json()).values()
    assert findings(verify.json())[("dkim", record["name"])][0] == "missing"

    publish(dns_server, verify.json()["records"], purposes={"dkim"})
    verified = (await c.post(url + "verify/", headers=h)).json()
    assert findings(verified)[("dkim", record["name"])][0] == "correct"
    assert verified["sendable"] is True
    accepted = await c.post("/api/sender-profiles/", headers=h, json=profile)
    assert accepted.status_code == 201, accepted.text

    listed = (await c.get("/api/sending-domains/", headers=h)).json()
    assert [d["domain"] for d in listed["results"]] == [company.domain, "news.globex.test"]
    audit = await api.pool.fetch(
        "SELECT action FROM audit_log WHERE resource = 'sending_domain' ORDER BY id"
    )
    assert [r["action"] for r in audit][:2] == ["sending_domain.create", "sending_domain.verify"]

    rotated = await c.post(url + "rotate/", headers=h, json={})
    assert rotated.status_code == 200, rotated.text
    assert sorted(k["state"] for k in rotated.json()["dkim_keys"]) == ["active", "pending"]
    assert (await c.delete(url, headers=h)).status_code == 204
    assert (await c.get(url, headers=h)).status_code == 404


async def test_sending_domains_need_the_settings_permission_and_stay_within_the_company(
    api,
) -> None:
    company = await api.company()
    admin = await api.user(company)
    manager = await api.user(company, "marketing_manager")
    analyst = await api.user(company, "analyst")
    other = await api.user(await api.company())
    c = api.client
    added = await c.post("/api/sending-domains/", headers=admin.auth, json={"domain": "a.test"})
    url = f"/api/sending-domains/{added.json()['id']}/"

    assert (await c.get(url, headers=manager.auth)).status_code == 200
    denied = await c.post("/api/sending-domains/", headers=manager.auth, json={"domain": "b.test"})
    assert denied.status_code == 403
    assert (await c.get("/api/sending-domains/", headers=analyst.auth)).status_code == 403
    for method, path in (("GET", url), ("POST", url + "verify/"), ("DELETE", url)):
        response = await c.request(method, path, headers=other.auth)
        assert response.status_code == 404, (method, path, response.text)
    others = (await c.get("/api/sending-domains/", headers=other.auth)).json()["results"]
    assert "a.test" not in [d["domain"] for d in others]
    taken = await c.post("/api/sending-domains/", headers=other.auth, json={"domain": "a.test"})
    assert taken.status_code == 409 and taken.json()["error_code"] == "domain_taken"
    bad = await c.post("/api/sending-domains/", headers=admin.auth, json={"domain": "a..test"})
    assert bad.status_code == 422
    config = await c.delete(
        f"/api/sending-domains/{await _domain_id(api, company.domain)}/", headers=admin.auth
    )
    assert config.status_code == 409 and config.json()["error_code"] == "domain_in_config"


async def _domain_id(api, domain: str) -> int:
    return await api.pool.fetchval("SELECT id FROM sending_domains WHERE domain = $1", domain)
