"""Contacts: consent records, CSV import (streamed, per-row errors, progress) and export,
GDPR export and erasure, template content checks."""

from __future__ import annotations

import asyncio
import csv
import io

from mta import erasure
from tests.support.fixtures_control import HTML, Control, User, template_body


async def _admin(control: Control) -> tuple[User, dict[str, int]]:
    admin = await control.user(await control.company())
    return admin, await control.fixtures(admin)


async def _import(control: Control, user: User, list_id: int, data: bytes | object):
    return await control.client.post(
        f"/api/email-lists/{list_id}/imports/",
        headers={**user.auth, "Content-Type": "text/csv"},
        content=data,
    )


async def test_contact_keeps_its_consent_record(control: Control) -> None:
    admin, _ = await _admin(control)
    r = await control.client.post(
        "/api/contacts/",
        headers=admin.auth,
        json={
            "email": "Ann@Example.org",
            "consent_source": "form",
            "consent_at": "2026-01-02T03:04:05+01:00",
            "consent_ip": "2001:db8::1",
            "opt_in_state": "confirmed",
        },
    )
    assert r.status_code == 201, r.text
    contact = r.json()
    assert contact["email"] == "ann@example.org"
    assert contact["consent_at"] == "2026-01-02T02:04:05Z"
    assert contact["consent_ip"] == "2001:db8::1" and contact["confirmed_at"] is not None
    bad = await control.client.post(
        "/api/contacts/", headers=admin.auth, json={"email": "x@y.org", "consent_ip": "nope"}
    )
    assert bad.status_code == 422
    dup = await control.client.post(
        "/api/contacts/", headers=admin.auth, json={"email": "ANN@example.org"}
    )
    assert dup.status_code == 409 and dup.json()["details"]["field"] == "email"


async def test_csv_import_reports_rows_and_progress(control: Control) -> None:
    admin, ids = await _admin(control)
    data = (
        b"E-Mail;First Name;signup_ip;double_opt_in;Plan\r\n"
        b"a@example.org;Ann;192.0.2.1;yes;gold\r\n"
        b"not-an-address;Bob;;;\r\n"
        b"A@example.org;Dup;;;\r\n"
        b'c@example.org;"Cee; the third";;no;silver\r\n'
    )
    r = await _import(control, admin, ids["list"], data)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["state"] == "finished"
    assert (result["rows_seen"], result["rows_imported"], result["rows_failed"]) == (4, 2, 2)
    assert [e["row"] for e in result["errors"]] == [3, 4]
    assert result["bytes_read"] == result["bytes_total"] == len(data)
    members = (
        await control.client.get(f"/api/email-lists/{ids['list']}/contacts/", headers=admin.auth)
    ).json()
    by_email = {m["email"]: m for m in members["results"]}
    assert by_email["a@example.org"]["attributes"] == {"Plan": "gold"}
    assert by_email["a@example.org"]["opt_in_state"] == "confirmed"
    assert by_email["a@example.org"]["consent_ip"] == "192.0.2.1"
    assert by_email["c@example.org"]["first_name"] == "Cee; the third"
    assert by_email["c@example.org"]["consent_source"] == "import"
    # The import is listed with its progress, and audited.
    listed = (
        await control.client.get(f"/api/email-lists/{ids['list']}/imports/", headers=admin.auth)
    ).json()
    assert listed["results"][0]["id"] == result["id"]
    audit = await control.pool.fetchval(
        "SELECT after FROM audit_log WHERE action = 'email_list.import'"
    )
    assert audit["rows_imported"] == 2
    # A file without an email column is refused as a whole.
    r = await _import(control, admin, ids["list"], b"name\nAnn\n")
    assert r.status_code == 422 and "email" in r.json()["message"]
    r = await control.client.post(
        f"/api/email-lists/{ids['list']}/imports/", headers=admin.auth, json={"email": "x"}
    )
    assert r.status_code == 415


async def test_import_streams_and_progress_is_visible_while_it_runs(control: Control) -> None:
    admin, ids = await _admin(control)
    rows = 8000  # the first half is over the 64 KiB the parser sniffs before parsing
    release = asyncio.Event()

    async def body():
        yield b"email,first_name\n"
        yield b"".join(b"user%d@example.org,U%d\n" % (i, i) for i in range(rows // 2))
        await release.wait()
        yield b"".join(b"user%d@example.org,U%d\n" % (i, i) for i in range(rows // 2, rows))

    upload = asyncio.create_task(_import(control, admin, ids["list"], body()))
    progress = None
    for _ in range(100):
        found = (
            await control.client.get(f"/api/email-lists/{ids['list']}/imports/", headers=admin.auth)
        ).json()
        assert "results" in found, found
        if found["results"] and found["results"][0]["rows_imported"] >= 2000:
            progress = found["results"][0]
            break
        await asyncio.sleep(0.1)
    assert progress is not None and progress["state"] == "running"
    assert progress["rows_imported"] < rows
    release.set()
    done = (await upload).json()
    assert done["state"] == "finished" and done["rows_imported"] == rows
    count = await control.pool.fetchval(
        "SELECT count(*) FROM list_members WHERE list_id = $1", ids["list"]
    )
    assert count == rows + 1


async def test_export_is_csv_of_the_members(control: Control) -> None:
    admin, ids = await _admin(control)
    await _import(control, admin, ids["list"], b"email,first_name\nz@example.org,=HYPERLINK(1)\n")
    r = await control.client.get(f"/api/email-lists/{ids['list']}/export/", headers=admin.auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["email"] for row in rows} == {"jane1@example.net", "z@example.org"} or len(
        rows
    ) == 2
    z = next(row for row in rows if row["email"] == "z@example.org")
    assert z["first_name"] == "'=HYPERLINK(1)" and z["state"] == "subscribed"
    analyst = await control.user(admin.company, "analyst")
    denied = await control.client.get(
        f"/api/email-lists/{ids['list']}/export/", headers=analyst.auth
    )
    assert denied.status_code == 403


async def test_gdpr_export_and_erasure(control: Control) -> None:
    admin, ids = await _admin(control)
    c, h = control.client, admin.auth
    contact = (await c.get(f"/api/contacts/{ids['contact']}/", headers=h)).json()
    address = contact["email"]
    # Some mail history for the address, and a suppression in plain text.
    message_id = await control.pool.fetchval(
        "INSERT INTO messages (company_id, mail_from, from_domain, body, size)"
        " VALUES ($1, 'a@b', 'b', 'x', 1) RETURNING id",
        admin.company.id,
    )
    await control.pool.execute(
        "INSERT INTO recipients (message_id, company_id, recipient, domain, expires_at)"
        " VALUES ($1, $2, $3, 'example.net', now() + interval '1 day')",
        message_id,
        admin.company.id,
        address,
    )
    await control.pool.execute(
        "INSERT INTO suppressions (company_id, address, reason) VALUES ($1, $2, 'bounce')",
        admin.company.id,
        address,
    )
    export = (await c.get(f"/api/contacts/{ids['contact']}/export/", headers=h)).json()
    assert export["contact"]["email"] == address
    assert export["lists"][0]["list_id"] == ids["list"]
    assert len(export["messages"]) == 1 and export["consent"]["consent_source"] == "api"
    r = await c.post(f"/api/contacts/{ids['contact']}/erase/", headers=h)
    assert r.status_code == 200 and r.json()["erased"] is True
    assert (await c.get(f"/api/contacts/{ids['contact']}/", headers=h)).status_code == 404
    pool = control.pool
    values = []
    for table in ("contacts", "recipients", "suppressions", "audit_log", "list_members"):
        values += [str(v) for row in await pool.fetch(f"SELECT * FROM {table}") for v in row]
    dump = " ".join(values)
    assert address not in dump
    assert "jane" not in dump.lower()
    # Never mailed or added again: the hash blocks it, in the mail path too.
    assert await erasure.is_erased_address_suppressed(pool, admin.company.id, address.upper())
    again = await c.post("/api/contacts/", headers=h, json={"email": address})
    assert again.status_code == 409 and again.json()["details"]["reason"] == "address_erased"
    r = await _import(control, admin, ids["list"], f"email\n{address}\n".encode())
    assert r.json()["rows_imported"] == 0 and r.json()["errors"][0]["field"] == "email"
    analyst = await control.user(admin.company, "analyst")
    other = (await c.post("/api/contacts/", headers=h, json={"email": "o@example.org"})).json()
    assert (
        await c.post(f"/api/contacts/{other['id']}/erase/", headers=analyst.auth)
    ).status_code == 403


async def test_template_content_checks_on_save(control: Control) -> None:
    admin, _ = await _admin(control)
    c, h = control.client, admin.auth
    no_unsub = HTML.replace('<a href="{{unsubscribe_url}}">Unsubscribe</a>', "")
    r = await c.post(
        "/api/email-templates/", headers=h, json=template_body("NOU", html_content=no_unsub)
    )
    assert r.status_code == 422 and r.json()["error_code"] == "content_rejected"
    checks = {x["check"] for x in r.json()["details"]["results"] if x["severity"] == "error"}
    assert "unsubscribe_link" in checks
    spam = HTML.replace(
        "Hello", "FREE MONEY!!! ACT NOW!!! 100% FREE, CLICK HERE, WINNER, CASH BONUS " * 5
    )
    r = await c.post(
        "/api/email-templates/", headers=h, json=template_body("SPAM", html_content=spam)
    )
    assert r.status_code == 422, r.text
    assert any(x["check"] == "spam_score" for x in r.json()["details"]["results"])
    ok = await c.post("/api/email-templates/", headers=h, json=template_body("OK"))
    assert ok.status_code == 201
    report = ok.json()["content_checks"]
    assert report["ok"] is True and report["text_generated"] is True
    mjml = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi</mj-text>"
        '<mj-text><a href="{{unsubscribe_url}}">Unsubscribe</a></mj-text>'
        "</mj-column></mj-section></mj-body></mjml>"
    )
    r = await c.post(
        "/api/email-templates/",
        headers=h,
        json={
            k: v for k, v in template_body("MJML", mjml_source=mjml).items() if k != "html_content"
        },
    )
    assert r.status_code == 201, r.text
    assert "@media" in r.json()["html_content"]
