"""Templates keep the text part they will be sent with: generated from the HTML when the
author wrote none (and regenerated when the HTML changes), the author's own kept as written."""

from __future__ import annotations

from typing import Any

from tests.support.fixtures_control import HTML, Control, campaign_body, template_body


async def _get(control: Control, headers: dict[str, str], template_id: int) -> dict[str, Any]:
    r = await control.client.get(f"/api/email-templates/{template_id}/", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_template_without_a_text_part_stores_the_generated_one(control: Control) -> None:
    admin = await control.user(await control.company())
    c, h = control.client, admin.auth
    r = await c.post("/api/email-templates/", headers=h, json=template_body("GEN"))
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    saved = await _get(control, h, tid)
    assert saved["text_generated"] is True
    assert "Hello {{first_name}}" in saved["text_content"]
    assert "Unsubscribe ({{unsubscribe_url}})" in saved["text_content"]

    # The HTML changes: the generated text follows it.
    r = await c.patch(
        f"/api/email-templates/{tid}/",
        headers=h,
        json={"html_content": HTML.replace("Hello", "Goodbye")},
    )
    assert r.status_code == 200, r.text
    saved = await _get(control, h, tid)
    assert saved["text_generated"] is True
    assert "Goodbye {{first_name}}" in saved["text_content"]
    assert "Hello" not in saved["text_content"]

    # A client that PUTs back the whole template it read, with new HTML, has not written the
    # text it echoes: it is regenerated too.
    echoed = {k: v for k, v in saved.items() if k not in ("id", "content_checks")}
    echoed["html_content"] = HTML.replace("Hello", "Welcome")
    r = await c.put(f"/api/email-templates/{tid}/", headers=h, json=echoed)
    assert r.status_code == 200, r.text
    assert "Welcome {{first_name}}" in r.json()["text_content"]
    assert r.json()["text_generated"] is True


async def test_a_text_part_written_by_the_author_is_kept(control: Control) -> None:
    admin = await control.user(await control.company())
    c, h = control.client, admin.auth
    own = "Hi {{first_name}}, in plain words.\n\nLeave: {{unsubscribe_url}}"
    r = await c.post(
        "/api/email-templates/", headers=h, json=template_body("OWN", text_content=own)
    )
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    assert r.json()["text_generated"] is False and r.json()["content_checks"]["ok"]
    r = await c.patch(
        f"/api/email-templates/{tid}/",
        headers=h,
        json={"html_content": HTML.replace("Hello", "Goodbye")},
    )
    assert r.status_code == 200, r.text
    saved = await _get(control, h, tid)
    assert saved["text_content"] == own and saved["text_generated"] is False

    # A generated text part the author then edits becomes theirs.
    r = await c.post("/api/email-templates/", headers=h, json=template_body("EDIT"))
    edited = r.json()["text_content"] + "\nP.S. See you soon."
    tid2 = r.json()["id"]
    r = await c.patch(f"/api/email-templates/{tid2}/", headers=h, json={"text_content": edited})
    assert r.json()["text_content"] == edited and r.json()["text_generated"] is False

    # Clearing the author's text part goes back to a generated one.
    r = await c.patch(f"/api/email-templates/{tid}/", headers=h, json={"text_content": None})
    assert r.status_code == 200, r.text
    saved = await _get(control, h, tid)
    assert saved["text_generated"] is True and "Goodbye {{first_name}}" in saved["text_content"]


async def test_usage_count_is_the_number_of_live_campaigns_using_the_template(
    control: Control,
) -> None:
    admin = await control.user(await control.company())
    c, h = control.client, admin.auth
    ids = await control.fixtures(admin)  # one campaign on ids["template"]
    other = await c.post("/api/email-templates/", headers=h, json=template_body("OTHER"))
    assert other.status_code == 201 and other.json()["usage_count"] == 0
    body = campaign_body(ids["template"], ids["list"], ids["sender"])
    second = await c.post("/api/email-campaigns/", headers=h, json=body)
    assert second.status_code == 201, second.text
    assert (await _get(control, h, ids["template"]))["usage_count"] == 2

    # Moving a campaign to another template moves its use; deleting it ends it.
    r = await c.patch(
        f"/api/email-campaigns/{second.json()['id']}/",
        headers=h,
        json={"email_template_id": other.json()["id"]},
    )
    assert r.status_code == 200, r.text
    listed = await c.get("/api/email-templates/", headers=h)
    usage = {t["id"]: t["usage_count"] for t in listed.json()["results"]}
    assert usage == {ids["template"]: 1, other.json()["id"]: 1}
    r = await c.delete(f"/api/email-campaigns/{second.json()['id']}/", headers=h)
    assert r.status_code == 204, r.text
    assert (await _get(control, h, other.json()["id"]))["usage_count"] == 0
