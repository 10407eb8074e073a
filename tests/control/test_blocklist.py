"""The company blocklist over HTTP: addresses and domains normalised, duplicates refused,
listed and removed under the settings permission, one company's entries invisible to another."""

from __future__ import annotations

from tests.support.fixtures_control import Control


async def test_blocklist_entries_are_normalised_listed_and_removed(control: Control) -> None:
    company = await control.company()
    admin = await control.user(company, "admin")
    c, h = control.client, admin.auth
    r = await c.post(
        "/api/blocklist/", headers=h, json={"entry": " Jo@Example.COM ", "reason": "asked"}
    )
    assert r.status_code == 201, r.text
    assert (r.json()["entry"], r.json()["kind"], r.json()["reason"]) == (
        "jo@example.com",
        "address",
        "asked",
    )
    r = await c.post("/api/blocklist/", headers=h, json={"entry": "Spam.Example"})
    assert (r.status_code, r.json()["kind"], r.json()["entry"]) == (201, "domain", "spam.example")
    domain_id = r.json()["id"]
    r = await c.post("/api/blocklist/", headers=h, json={"entry": "jo@example.com"})
    assert r.status_code == 409
    for bad in ("not an address@", "a b.example", "@example.com"):
        r = await c.post("/api/blocklist/", headers=h, json={"entry": bad})
        assert r.status_code == 422, bad
    listed = (await c.get("/api/blocklist/", headers=h, params={"kind": "domain"})).json()
    assert [e["entry"] for e in listed["results"]] == ["spam.example"] and listed["total"] == 1

    other = await control.user(await control.company(), "admin")
    assert (await c.get("/api/blocklist/", headers=other.auth)).json()["total"] == 0
    assert (await c.delete(f"/api/blocklist/{domain_id}/", headers=other.auth)).status_code == 404
    # Marketing managers read settings but may not change them.
    manager = await control.user(company, "marketing_manager")
    assert (await c.get("/api/blocklist/", headers=manager.auth)).status_code == 200
    r = await c.post("/api/blocklist/", headers=manager.auth, json={"entry": "x@y.example"})
    assert r.status_code == 403

    assert (await c.delete(f"/api/blocklist/{domain_id}/", headers=h)).status_code == 204
    assert (await c.get("/api/blocklist/", headers=h)).json()["total"] == 1
