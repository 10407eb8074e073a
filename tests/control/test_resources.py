"""The blueprint's resources over HTTP: validation, campaign codes, soft delete with history,
referential rules, pagination and filters, the status machine, approval and schedule rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.fixtures_control import (
    Control,
    User,
    campaign_body,
    list_body,
    template_body,
    workflow_body,
)


async def _admin(control: Control) -> tuple[User, dict[str, int]]:
    company = await control.company()
    admin = await control.user(company)
    return admin, await control.fixtures(admin)


async def test_validation_errors_name_every_bad_field(control: Control) -> None:
    admin, _ = await _admin(control)
    r = await control.client.post(
        "/api/email-campaigns/",
        headers=admin.auth,
        json={
            "campaign_name": "x" * 201,
            "campaign_code": "bad code!",
            "campaign_type": "carrier-pigeon",
            "email_template_id": "one",
            "surprise": 1,
        },
    )
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"error_code", "message", "details"}
    assert body["error_code"] == "validation_failed"
    fields = body["details"]["fields"]
    assert fields["campaign_name"] == "must be at most 200 characters"
    assert fields["campaign_code"].startswith("must match")
    assert fields["campaign_type"].startswith("must be one of")
    assert fields["email_template_id"] == "must be an integer"
    assert fields["surprise"] == "unknown field"
    assert fields["subject_line"] == "is required"
    assert fields["target_list_id"] == "is required"


async def test_bad_bodies_get_clear_errors_and_the_one_error_shape(control: Control) -> None:
    admin, _ = await _admin(control)
    c, h = control.client, admin.auth
    r = await c.post(
        "/api/email-templates/", headers={**h, "Content-Type": "application/json"}, content="{"
    )
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_json"
    r = await c.post("/api/email-templates/", headers=h, content="a=b")
    assert r.status_code == 415
    r = await c.post("/api/email-templates/", headers=h, json=[1, 2])
    assert r.status_code == 422
    r = await c.post(
        "/api/email-templates/", headers=h, json=template_body("NUL", template_name="a\x00b")
    )
    assert r.status_code == 422
    r = await c.post(
        "/api/email-templates/", headers=h, json=template_body("BIG", html_content="x" * 2_000_000)
    )
    assert r.status_code == 413 and r.json()["error_code"] == "body_too_large"
    r = await c.get("/api/nowhere", headers=h)
    assert r.status_code == 404 and set(r.json()) == {"error_code", "message", "details"}
    r = await c.patch("/api/email-templates/", headers=h, json={})
    assert r.status_code == 405 and r.json()["error_code"] == "method_not_allowed"
    for bad in ("abc", "0", "99999999999999999999999"):
        r = await c.get(f"/api/email-templates/{bad}/", headers=h)
        assert r.status_code == 404, bad
    r = await c.get("/api/email-campaigns/?page=0&page_size=1000", headers=h)
    assert r.status_code == 422 and set(r.json()["details"]["fields"]) == {"page", "page_size"}
    r = await c.get("/api/email-campaigns/?scheduled_from=yesterday", headers=h)
    assert r.status_code == 422


async def test_request_ids_are_echoed_and_recorded(control: Control) -> None:
    admin, _ = await _admin(control)
    r = await control.client.post(
        "/api/email-lists/",
        headers={**admin.auth, "X-Request-Id": "trace-123"},
        json=list_body("RID"),
    )
    assert r.headers["x-request-id"] == "trace-123"
    row = await control.pool.fetchrow(
        "SELECT * FROM audit_log WHERE action = 'email_list.create' AND request_id = 'trace-123'"
    )
    assert row is not None and row["user_id"] == admin.id and str(row["ip"]) == "127.0.0.1"
    generated = await control.client.get("/api/email-lists/", headers=admin.auth)
    assert len(generated.headers["x-request-id"]) == 32


async def test_campaign_codes_generated_unique_and_reusable_after_delete(control: Control) -> None:
    admin, ids = await _admin(control)
    c, h = control.client, admin.auth
    body = campaign_body(ids["template"], ids["list"], ids["sender"])
    second = (await c.post("/api/email-campaigns/", headers=h, json=body)).json()
    assert second["campaign_code"] == "EC-00002"
    await c.put("/api/settings/", headers=h, json={"code_prefix": "SPRING"})
    third = (await c.post("/api/email-campaigns/", headers=h, json=body)).json()
    assert third["campaign_code"] == "SPRING-00003"
    # An explicit code that the generator will produce next is skipped over.
    taken = {**body, "campaign_code": "SPRING-00004"}
    assert (await c.post("/api/email-campaigns/", headers=h, json=taken)).status_code == 201
    fourth = (await c.post("/api/email-campaigns/", headers=h, json=body)).json()
    assert fourth["campaign_code"] == "SPRING-00005"
    dup = await c.post("/api/email-campaigns/", headers=h, json=taken)
    assert dup.status_code == 409 and dup.json()["details"]["field"] == "campaign_code"
    # Codes are unique per company: another company may use the same one.
    other = await control.user(await control.company())
    oids = await control.fixtures(other)
    mine = campaign_body(oids["template"], oids["list"], campaign_code="SPRING-00004")
    assert (await c.post("/api/email-campaigns/", headers=other.auth, json=mine)).status_code == 201
    # Soft delete frees the code but keeps the row (history).
    cid = second["id"]
    assert (await c.delete(f"/api/email-campaigns/{cid}/", headers=h)).status_code == 204
    assert (await c.get(f"/api/email-campaigns/{cid}/", headers=h)).status_code == 404
    again = {**body, "campaign_code": "EC-00002"}
    assert (await c.post("/api/email-campaigns/", headers=h, json=again)).status_code == 201
    row = await control.pool.fetchrow(
        "SELECT is_deleted, deleted_at FROM email_campaigns WHERE id = $1", cid
    )
    assert row["is_deleted"] and row["deleted_at"] is not None


async def test_references_must_be_live_rows_of_the_company(control: Control) -> None:
    admin, ids = await _admin(control)
    other = await control.user(await control.company())
    oids = await control.fixtures(other)
    r = await control.client.post(
        "/api/email-campaigns/",
        headers=admin.auth,
        json=campaign_body(oids["template"], ids["list"], oids["sender"]),
    )
    assert r.status_code == 422
    assert set(r.json()["details"]["fields"]) == {"email_template_id", "sender_profile_id"}


async def test_in_use_rules(control: Control) -> None:
    admin, ids = await _admin(control)
    c, h = control.client, admin.auth
    # The template and list are used by the (draft) campaign.
    r = await c.delete(f"/api/email-templates/{ids['template']}/", headers=h)
    assert r.status_code == 409 and r.json()["error_code"] == "in_use"
    assert r.json()["details"]["campaigns"][0]["id"] == ids["campaign"]
    assert (await c.delete(f"/api/email-lists/{ids['list']}/", headers=h)).status_code == 409
    # The campaign is used by the active workflow.
    r = await c.delete(f"/api/email-campaigns/{ids['campaign']}/", headers=h)
    assert r.status_code == 409 and r.json()["details"]["workflows"][0]["id"] == ids["workflow"]
    # Deactivate the workflow: now the campaign may go, and then the template.
    await c.put(f"/api/email-workflows/{ids['workflow']}/", headers=h, json={"is_active": False})
    assert (
        await c.delete(f"/api/email-campaigns/{ids['campaign']}/", headers=h)
    ).status_code == 204
    assert (
        await c.delete(f"/api/email-templates/{ids['template']}/", headers=h)
    ).status_code == 204
    # A workflow cannot reference another company's (or a deleted) campaign.
    r = await c.post("/api/email-workflows/", headers=h, json=workflow_body("W2", ids["campaign"]))
    assert r.status_code == 422


async def test_pagination_filters_and_search(control: Control) -> None:
    admin, ids = await _admin(control)
    c, h = control.client, admin.auth
    for i in range(7):
        body = template_body(
            f"P{i}", is_active=i % 2 == 0, template_type="welcome" if i < 3 else "event"
        )
        assert (await c.post("/api/email-templates/", headers=h, json=body)).status_code == 201
    page = (await c.get("/api/email-templates/?page=2&page_size=3", headers=h)).json()
    assert page["total"] == 8 and page["page"] == 2 and len(page["results"]) == 3
    last = (await c.get("/api/email-templates/?page=3&page_size=3", headers=h)).json()
    assert len(last["results"]) == 2
    beyond = (await c.get("/api/email-templates/?page=9&page_size=3", headers=h)).json()
    assert beyond["results"] == [] and beyond["total"] == 0
    welcome = (await c.get("/api/email-templates/?template_type=welcome", headers=h)).json()
    assert welcome["total"] == 3
    active_events = (
        await c.get("/api/email-templates/?template_type=event&is_active=true", headers=h)
    ).json()
    assert {t["template_code"] for t in active_events["results"]} == {"P4", "P6"}
    found = (await c.get("/api/email-templates/?search=template%20p5", headers=h)).json()
    assert [t["template_code"] for t in found["results"]] == ["P5"]
    # Campaigns by status and scheduled date range.
    soon = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    r = await c.post(
        f"/api/email-campaigns/{ids['campaign']}/send/",
        headers=h,
        json={"scheduled_send_date": soon.isoformat()},
    )
    assert r.status_code == 200, r.text
    assert r.json()["scheduled_send_date"] == soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    start, end = soon - timedelta(hours=1), soon + timedelta(hours=1)
    window = f"scheduled_from={start.isoformat()}&scheduled_to={end.isoformat()}"
    window = window.replace("+", "%2B")
    hits = (
        await c.get(f"/api/email-campaigns/?campaign_status=scheduled&{window}", headers=h)
    ).json()
    assert hits["total"] == 1
    none = (await c.get("/api/email-campaigns/?campaign_status=sent", headers=h)).json()
    assert none["total"] == 0


async def _status(control: Control, admin: User, cid: int, action: str, body: Any = None) -> Any:
    return await control.client.post(
        f"/api/email-campaigns/{cid}/{action}/", headers=admin.auth, json=body or {}
    )


async def test_status_machine_allows_only_listed_moves(control: Control) -> None:
    admin, ids = await _admin(control)
    cid = ids["campaign"]
    r = await _status(control, admin, cid, "pause")
    assert r.status_code == 409
    assert r.json()["error_code"] == "invalid_transition"
    assert r.json()["details"]["allowed"] == ["scheduled", "sending", "cancelled"]
    assert (await _status(control, admin, cid, "send")).json()["campaign_status"] == "sending"
    # Editing while sending is refused; pausing is allowed and makes it editable again.
    r = await control.client.put(
        f"/api/email-campaigns/{cid}/", headers=admin.auth, json={"subject_line": "x"}
    )
    assert r.status_code == 409
    assert (await _status(control, admin, cid, "pause")).json()["campaign_status"] == "paused"
    assert (await _status(control, admin, cid, "resume")).json()["campaign_status"] == "sending"
    assert (await _status(control, admin, cid, "cancel")).json()["campaign_status"] == "cancelled"
    r = await _status(control, admin, cid, "resume")
    assert r.status_code == 409 and r.json()["details"]["allowed"] == []


async def test_send_needs_a_sender_profile_and_respects_schedule_rules(control: Control) -> None:
    admin, ids = await _admin(control)
    c, h = control.client, admin.auth
    bare = campaign_body(ids["template"], ids["list"])
    cid = (await c.post("/api/email-campaigns/", headers=h, json=bare)).json()["id"]
    r = await _status(control, admin, cid, "send")
    assert r.status_code == 422 and "sender_profile_id" in r.json()["details"]["fields"]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = await _status(control, admin, ids["campaign"], "send", {"scheduled_send_date": past})
    assert r.status_code == 422 and r.json()["error_code"] == "schedule_rejected"
    assert r.json()["details"]["problems"][0]["code"] == "in_past"
    await c.put("/api/settings/", headers=h, json={"sending": {"daily_limit": 0}})
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = await _status(control, admin, ids["campaign"], "send", {"scheduled_send_date": future})
    assert r.status_code == 422
    assert [p["code"] for p in r.json()["details"]["problems"]] == ["daily_limit"]
    r = await c.put("/api/settings/", headers=h, json={"sending": {"timezone": "Mars/Olympus"}})
    assert r.status_code == 422 and r.json()["error_code"] == "invalid_settings"


async def test_approval_four_eyes_reasons_and_reset_on_edit(control: Control) -> None:
    company = await control.company()
    admin = await control.user(company)
    await control.client.put(
        "/api/settings/", headers=admin.auth, json={"approval": {"required": True}}
    )
    specialist = await control.user(company, "email_specialist")
    manager = await control.user(company, "marketing_manager")
    ids = await control.fixtures(admin)
    c = control.client
    body = campaign_body(ids["template"], ids["list"], ids["sender"])
    cid = (await c.post("/api/email-campaigns/", headers=specialist.auth, json=body)).json()["id"]
    created = (await c.get(f"/api/email-campaigns/{cid}/", headers=specialist.auth)).json()
    assert created["approval_status"] == "pending"
    r = await _status(control, specialist, cid, "send")
    assert r.status_code == 409 and r.json()["error_code"] == "approval_required"
    # The creator cannot approve (and lacks the permission anyway); a manager can.
    assert (await _status(control, specialist, cid, "approve")).status_code == 403
    r = await _status(control, manager, cid, "reject", {"reason": "  "})
    assert r.status_code == 422
    r = await _status(control, manager, cid, "reject", {"reason": "Fix the subject"})
    assert r.json()["approval_status"] == "rejected"
    assert r.json()["rejection_reason"] == "Fix the subject"
    r = await _status(control, specialist, cid, "send")
    assert r.status_code == 409 and "Fix the subject" in r.json()["message"]
    # The edit puts it back to pending; the manager approves; the specialist sends.
    r = await c.put(
        f"/api/email-campaigns/{cid}/", headers=specialist.auth, json={"subject_line": "Better"}
    )
    assert r.json()["approval_status"] == "pending" and r.json()["rejection_reason"] is None
    r = await _status(control, manager, cid, "approve")
    assert r.json()["approval_status"] == "approved"
    assert r.json()["approved_by_user_id"] == manager.id
    # An edit after approval resets it again.
    r = await c.put(
        f"/api/email-campaigns/{cid}/", headers=specialist.auth, json={"preheader_text": "p"}
    )
    assert r.json()["approval_status"] == "pending"
    await _status(control, manager, cid, "approve")
    r = await _status(control, specialist, cid, "send")
    assert r.status_code == 200 and r.json()["campaign_status"] == "sending"
    assert r.json()["total_recipients"] == 1
    actions = [
        row["action"]
        for row in await control.pool.fetch(
            "SELECT action FROM audit_log WHERE resource = 'email_campaign' AND resource_id = $1"
            " ORDER BY id",
            str(cid),
        )
    ]
    assert actions == [
        "email_campaign.create",
        "email_campaign.reject",
        "email_campaign.update",
        "email_campaign.approve",
        "email_campaign.update",
        "email_campaign.approve",
        "email_campaign.send",
    ]


async def test_approval_threshold_on_audience_size(control: Control) -> None:
    admin, ids = await _admin(control)
    c, h = control.client, admin.auth
    await c.put("/api/settings/", headers=h, json={"approval": {"audience_threshold": 1}})
    # One subscriber: under the threshold, no approval needed.
    body = campaign_body(ids["template"], ids["list"], ids["sender"])
    small = (await c.post("/api/email-campaigns/", headers=h, json=body)).json()
    assert small["approval_status"] == "not_required"
    # The audience grows past the threshold before sending: approval is required then.
    extra = (await c.post("/api/contacts/", headers=h, json={"email": "b@example.net"})).json()
    await c.post(
        f"/api/email-lists/{ids['list']}/contacts/", headers=h, json={"contact_ids": [extra["id"]]}
    )
    r = await _status(control, admin, small["id"], "send")
    assert r.status_code == 409 and r.json()["error_code"] == "approval_required"


async def test_unsubscribed_addresses_leave_the_effective_membership(control: Control) -> None:
    from mta import unsubscriptions

    admin, ids = await _admin(control)
    c, h = control.client, admin.auth
    lst = (await c.get(f"/api/email-lists/{ids['list']}/", headers=h)).json()
    assert lst["active_subscribers"] == 1
    contact = (await c.get(f"/api/contacts/{ids['contact']}/", headers=h)).json()
    await unsubscriptions.unsubscribe(
        control.pool, admin.company.id, contact["email"], source="one-click"
    )
    lst = (await c.get(f"/api/email-lists/{ids['list']}/", headers=h)).json()
    assert lst["active_subscribers"] == 0 and lst["unsubscribed_count"] == 1
    members = (await c.get(f"/api/email-lists/{ids['list']}/contacts/", headers=h)).json()
    assert members["results"][0]["membership_state"] == "unsubscribed"
    listed = (await c.get(f"/api/contacts/?list_id={ids['list']}", headers=h)).json()
    assert listed["total"] == 0
    r = await _status(control, admin, ids["campaign"], "send")
    assert r.json()["total_recipients"] == 0


async def test_sender_profile_must_use_a_company_sending_domain(control: Control) -> None:
    admin, _ = await _admin(control)
    r = await control.client.post(
        "/api/sender-profiles/",
        headers=admin.auth,
        json={"profile_name": "x", "from_address": "ceo@gmail.com"},
    )
    assert r.status_code == 422
    assert "verified sending domains" in r.json()["details"]["fields"]["from_address"]
