"""Sending domains managed at run time (issue 14): keys generated and sealed, the records to
publish, the live DNS check (missing, wrong, correct) against the stub DNS server, sending only
once DKIM verifies, rotation with overlap, and signing by the delivery engine's signers."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import dkim
import pytest

from mta import sending_domains as sd
from mta import tenants
from mta.config import build_config
from mta.dkim import DkimSigners
from mta.domain_keys import KeySeal, KeySealError
from tests.support.delivery import dns_txt
from tests.support.sending_domains import dkim_records, findings, publish

SECRET = b"test-secret"


def _config(dns_port: int, **domains: object):
    return build_config(
        {
            "hostname": "mta1.sendmill.test",
            "secret": SECRET.decode(),
            "bounce": {"domain": "bounces.sendmill.test"},
            "tracker": {"listen": "127.0.0.1:0", "base_url": "https://t.sendmill.test"},
            "dns": {"resolvers": [f"127.0.0.1:{dns_port}"], "timeout": "2s"},
            "domains": domains,
        }
    )


@pytest.fixture
async def manager(pool, dns_server):
    return sd.DomainManager(pool, _config(dns_server.port), KeySeal(SECRET))


def _signed(signers: DkimSigners, sender: str) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "rcpt@dest.test"
    m["Subject"] = "signed"
    m.set_content("hello\n")
    body = m.as_bytes().replace(b"\n", b"\r\n")
    signer = signers.signer_for(sender.rpartition("@")[2])
    assert signer is not None
    return signer.sign(body) + body


async def test_an_added_domain_lists_its_records_as_a_dns_host_wants_them(manager, pool) -> None:
    company = await tenants.ensure_company(pool, "globex")
    view = await manager.add(company, "Mail.Globex.Test", ed25519=True)

    assert view["domain"] == "mail.globex.test"
    assert view["sendable"] is False
    assert sorted(k["algorithm"] for k in view["dkim_keys"]) == ["ed25519-sha256", "rsa-sha256"]
    by_purpose = {}
    for record in view["records"]:
        by_purpose.setdefault(record["purpose"], []).append(record)
    rsa = next(r for r in by_purpose["dkim"] if "k=rsa" in r["value"])
    # RSA-2048's record is longer than one TXT string: split, nothing lost, none over 255.
    assert len(rsa["strings"]) == 2 and "".join(rsa["strings"]) == rsa["value"]
    assert all(len(s) <= 255 for s in rsa["strings"])
    assert rsa["host"] == f"{rsa['selector']}._domainkey"  # relative to the domain
    assert rsa["zone_line"].startswith(f'{rsa["name"]}. IN TXT "v=DKIM1; k=rsa; p=')
    assert by_purpose["spf"][0]["value"] == "v=spf1 a:mta1.sendmill.test ~all"
    assert by_purpose["spf"][0]["host"] == "@"
    assert by_purpose["dmarc"][0]["name"] == "_dmarc.mail.globex.test"
    mx = by_purpose["bounce_mx"][0]
    assert (mx["name"], mx["value"], mx["priority"]) == (
        "bounces.sendmill.test",
        "mta1.sendmill.test",
        10,
    )
    assert by_purpose["tracking_cname"][0]["value"] == "t.sendmill.test"
    # The private keys are sealed in the database, never stored as PEM.
    sealed = await pool.fetch("SELECT sealed_key FROM dkim_keys")
    assert all(b"PRIVATE KEY" not in r["sealed_key"] for r in sealed)
    with pytest.raises(sd.DomainTaken):
        await manager.add(await tenants.ensure_company(pool, "initech"), "mail.globex.test")
    with pytest.raises(sd.InvalidDomain):
        await manager.add(company, "not a domain")


async def test_verification_says_missing_then_wrong_then_correct_and_only_then_sends(
    manager, pool, dns_server
) -> None:
    company = await tenants.ensure_company(pool, "globex")
    view = await manager.add(company, "globex.test")
    (record,) = dkim_records(view).values()

    view = await manager.verify(company, "globex.test")
    found = findings(view)
    assert found[("dkim", record["name"])][0] == "missing"
    assert found[("spf", "globex.test")][0] == "missing"
    assert not await sd.may_send_from(pool, company, "globex.test")

    # A record cut after its first string (a DNS host form that kept 255 characters).
    dns_server.add_txt(record["name"], record["strings"][0])
    dns_server.add_txt("globex.test", "v=spf1 include:_spf.elsewhere.test -all")
    dns_server.add_mx("bounces.sendmill.test", [(10, "mx.elsewhere.test")])
    found = findings(await manager.verify(company, "globex.test"))
    assert found[("dkim", record["name"])] == (
        "wrong",
        "p= is cut short: publish every string of the record",
    )
    assert found[("spf", "globex.test")] == ("wrong", "does not authorise a:mta1.sendmill.test")
    assert found[("bounce_mx", "bounces.sendmill.test")] == (
        "wrong",
        "MX points to mx.elsewhere.test",
    )
    assert not await sd.may_send_from(pool, company, "globex.test")

    dns_server.remove(record["name"], "TXT")
    dns_server.remove("globex.test", "TXT")
    publish(dns_server, view["records"], purposes={"dkim", "spf", "bounce_mx", "dmarc"})
    dns_server.add_mx("bounces.sendmill.test", [(10, "mta1.sendmill.test")])
    view = await manager.verify(company, "globex.test")
    found = findings(view)
    assert found[("dkim", record["name"])][0] == "correct"
    assert found[("spf", "globex.test")][0] == "correct"
    assert found[("bounce_mx", "bounces.sendmill.test")][0] == "correct"
    assert found[("tracking_cname", "track.globex.test")][0] == "missing"
    assert view["sendable"] and view["verified_at"] is not None
    assert [k["state"] for k in view["dkim_keys"]] == ["active"]
    assert await sd.may_send_from(pool, company, "globex.test")
    # Another company does not gain the domain.
    other = await tenants.ensure_company(pool, "initech")
    assert not await sd.may_send_from(pool, other, "globex.test")
    with pytest.raises(sd.DomainNotFound):
        await manager.get(other, "globex.test")


async def test_a_relaxed_server_lets_an_unverified_domain_send_signed_with_its_pending_key(
    pool, dns_server
) -> None:
    config = _config(dns_server.port, require_verified_dkim=False)
    manager = sd.DomainManager(pool, config, KeySeal(SECRET))
    company = await tenants.ensure_company(pool, "globex")
    await manager.add(company, "globex.test")
    assert await sd.may_send_from(pool, company, "globex.test", require_verified=False)
    assert not await sd.may_send_from(pool, company, "globex.test", require_verified=True)
    signers = DkimSigners({})
    await sd.ManagedSigners(pool, signers, KeySeal(SECRET), 60, require_verified=False).refresh()
    assert signers.signer_for("globex.test") is not None


async def test_rotation_switches_once_the_new_selector_verifies_and_keeps_the_old_for_the_overlap(
    manager, pool, dns_server
) -> None:
    company = await tenants.ensure_company(pool, "globex")
    view = await manager.add(company, "globex.test")
    publish(dns_server, view["records"], purposes={"dkim"})
    view = await manager.verify(company, "globex.test")
    (old,) = dkim_records(view)
    signers = DkimSigners({})
    keys = sd.ManagedSigners(pool, signers, KeySeal(SECRET), 60, require_verified=True)
    assert await keys.refresh()
    signed = _signed(signers, "news@globex.test")
    assert f"s={old};".encode() in signed.replace(b" ", b"")

    view = await manager.rotate(company, "globex.test")
    new = next(s for s in dkim_records(view) if s != old)
    assert {k["selector"]: k["state"] for k in view["dkim_keys"]} == {
        old: "active",
        new: "pending",
    }
    # Not yet published: the old key keeps signing.
    view = await manager.verify(company, "globex.test")
    assert findings(view)[("dkim", f"{new}._domainkey.globex.test")][0] == "missing"
    assert await keys.refresh()  # a key was added: reloaded, still the old one signing
    assert f"s={old};".encode() in _signed(signers, "news@globex.test").replace(b" ", b"")

    publish(dns_server, [dkim_records(view)[new]], purposes={"dkim"})
    view = await manager.verify(company, "globex.test")
    states = {k["selector"]: k["state"] for k in view["dkim_keys"]}
    assert states == {old: "retiring", new: "active"}
    found = findings(view)
    # During the overlap both selectors are published and both verify.
    assert found[("dkim", f"{old}._domainkey.globex.test")][0] == "correct"
    assert found[("dkim", f"{new}._domainkey.globex.test")][0] == "correct"
    retiring = next(k for k in view["dkim_keys"] if k["selector"] == old)
    overlap = (
        retiring["retire_at"]
        - next(k for k in view["dkim_keys"] if k["selector"] == new)["activated_at"]
    )
    assert abs(overlap.total_seconds() - 7 * 86400) < 60
    assert await keys.refresh()
    signed = _signed(signers, "news@globex.test")
    assert f"s={new};".encode() in signed.replace(b" ", b"")
    verified = await asyncio.to_thread(dkim.verify, signed, dnsfunc=dns_txt(dns_server.port))
    assert verified

    # The overlap over: the old key is retired and its private half erased.
    await pool.execute(
        "UPDATE dkim_keys SET retire_at = now() - interval '1s' WHERE selector = $1", old
    )
    view = await manager.verify(company, "globex.test")
    assert [k["selector"] for k in view["dkim_keys"]] == [new]
    row = await pool.fetchrow(
        "SELECT state::text, sealed_key FROM dkim_keys WHERE selector = $1", old
    )
    assert row["state"] == "retired" and row["sealed_key"] is None


async def test_a_sealed_key_opens_only_under_its_secret_and_its_own_name() -> None:
    sealed = KeySeal(b"one").seal(b"PEM", "globex.test", "s1")
    assert KeySeal(b"one").open(sealed, "globex.test", "s1") == b"PEM"
    with pytest.raises(KeySealError):
        KeySeal(b"two").open(sealed, "globex.test", "s1")
    with pytest.raises(KeySealError):
        KeySeal(b"one").open(sealed, "initech.test", "s1")


async def test_a_config_domain_cannot_be_deleted_or_rotated_through_the_manager(
    manager, pool
) -> None:
    config = build_config({"sending_domains": [{"domain": "boot.test", "company": "acme"}]})
    await tenants.sync_sending_domains(pool, config)
    with pytest.raises(sd.NotManaged):
        await manager.delete(None, "boot.test")
    with pytest.raises(sd.NotManaged):
        await manager.rotate(None, "boot.test")
    acme = await tenants.ensure_company(pool, "acme")
    assert await sd.sendable_domains(pool, acme) == ["boot.test"]
