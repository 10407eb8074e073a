"""`GET /api/contacts/?list_id=` lists a list's effective subscribers: not those who left the
list, nor those unsubscribed through mail from that list or from every list."""

from __future__ import annotations

from mta.unsubscriptions import unsubscribe
from tests.support.fixtures_control import Control, list_body


async def test_contacts_of_a_list_are_its_effective_subscribers(control: Control) -> None:
    c = control.client
    company = await control.company()
    admin = await control.user(company, "admin")
    h = admin.auth
    lst = (await c.post("/api/email-lists/", headers=h, json=list_body("NEWS"))).json()["id"]
    other = (await c.post("/api/email-lists/", headers=h, json=list_body("OTHER"))).json()["id"]
    ids = {}
    for name in ("stays", "left", "unsub_list", "unsub_all", "unsub_other", "never"):
        r = await c.post("/api/contacts/", headers=h, json={"email": f"{name}@example.net"})
        ids[name] = r.json()["id"]
    members = [v for k, v in ids.items() if k != "never"]
    r = await c.post(f"/api/email-lists/{lst}/contacts/", headers=h, json={"contact_ids": members})
    assert r.status_code == 200, r.text
    r = await c.delete(f"/api/email-lists/{lst}/contacts/{ids['left']}/", headers=h)
    assert r.status_code == 204, r.text
    await unsubscribe(control.pool, company.id, "unsub_list@example.net", lst, source="test")
    await unsubscribe(control.pool, company.id, "unsub_all@example.net", source="test")
    await unsubscribe(control.pool, company.id, "unsub_other@example.net", other, source="test")

    listed = (await c.get(f"/api/contacts/?list_id={lst}", headers=h)).json()

    assert sorted(x["id"] for x in listed["results"]) == [ids["stays"], ids["unsub_other"]]
    assert listed["total"] == 2
