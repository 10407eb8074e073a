"""RBAC and tenancy, generated rather than hand-written:

- every role × every (resource, action) cell of control/permissions.toml, over HTTP: allowed
  cells succeed, the others answer 403 `permission_denied` and change nothing;
- every endpoint with an id in its path, called by another company's admin with this
  company's ids, answers 404 (never 403, never data);
- API keys carry only the permissions they were given;
- contact addresses are masked for roles without `contacts:pii`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from control.permissions import ROLES, role_permissions
from control.routes import ALL_APIS
from tests.support.fixtures_control import (
    Control,
    User,
    campaign_body,
    list_body,
    template_body,
    workflow_body,
)


@dataclass
class World:
    control: Control
    admin: User
    user: User
    ids: dict[str, int]

    async def fresh(self, kind: str) -> int:
        """A new object of `kind` created by the admin (for destructive cells)."""
        c, h = self.control.client, self.admin.auth
        n = len(self.ids) + await self.control.pool.fetchval("SELECT count(*) FROM audit_log")
        if kind == "campaign":
            body = campaign_body(self.ids["template"], self.ids["list"], self.ids["sender"])
            r = await c.post("/api/email-campaigns/", headers=h, json=body)
        elif kind == "template":
            r = await c.post("/api/email-templates/", headers=h, json=template_body(f"F{n}"))
        elif kind == "list":
            r = await c.post("/api/email-lists/", headers=h, json=list_body(f"F{n}"))
        elif kind == "workflow":
            r = await c.post("/api/email-workflows/", headers=h, json=workflow_body(f"F{n}"))
        elif kind == "contact":
            r = await c.post("/api/contacts/", headers=h, json={"email": f"f{n}@example.org"})
        elif kind == "sender":
            body = {"profile_name": "X", "from_address": f"x@{self.admin.company.domain}"}
            r = await c.post("/api/sender-profiles/", headers=h, json=body)
        elif kind == "user":
            body = {"email": f"u{n}@example.org", "role": "analyst", "password": "p" * 12}
            r = await c.post("/api/users/", headers=h, json=body)
        else:
            raise AssertionError(kind)
        assert r.status_code == 201, r.text
        return r.json()["id"]


Request = Callable[[World], Awaitable[tuple[str, str, Any]]]


async def _static(method: str, path: str, body: Any = None) -> tuple[str, str, Any]:
    return method, path, body


def req(method: str, path: str, body: Any = None, fresh: str | None = None) -> Request:
    """A request; `{id}` is an existing object, or a fresh one of kind `fresh`."""

    async def build(w: World) -> tuple[str, str, Any]:
        values = dict(w.ids)
        if fresh:
            values["id"] = await w.fresh(fresh)
        return method, path.format(**values), body(w) if callable(body) else body

    return build


# (resource, action) -> requests exercising it, each with the status an allowed caller gets.
CELLS: dict[tuple[str, str], list[tuple[Request, int]]] = {
    ("campaigns", "create"): [
        (
            req(
                "POST",
                "/api/email-campaigns/",
                lambda w: campaign_body(w.ids["template"], w.ids["list"], w.ids["sender"]),
            ),
            201,
        ),
    ],
    ("campaigns", "read"): [
        (req("GET", "/api/email-campaigns/"), 200),
        (req("GET", "/api/email-campaigns/{campaign}/"), 200),
    ],
    ("campaigns", "update"): [
        (req("PUT", "/api/email-campaigns/{campaign}/", {"subject_line": "New"}), 200),
    ],
    ("campaigns", "delete"): [(req("DELETE", "/api/email-campaigns/{id}/", fresh="campaign"), 204)],
    ("campaigns", "send"): [
        (req("POST", "/api/email-campaigns/{id}/send/", {}, fresh="campaign"), 200),
        (req("POST", "/api/email-campaigns/{id}/cancel/", fresh="campaign"), 200),
    ],
    # Nothing is pending in this company, so an approver gets 409 (not 403): allowed.
    ("campaigns", "approve"): [(req("POST", "/api/email-campaigns/{campaign}/approve/"), 409)],
    ("templates", "create"): [(req("POST", "/api/email-templates/", template_body("NEW")), 201)],
    ("templates", "read"): [
        (req("GET", "/api/email-templates/"), 200),
        (req("GET", "/api/email-templates/{template}/"), 200),
    ],
    ("templates", "update"): [
        (req("PATCH", "/api/email-templates/{template}/", {"description": "d"}), 200),
    ],
    ("templates", "delete"): [(req("DELETE", "/api/email-templates/{id}/", fresh="template"), 204)],
    ("lists", "create"): [
        (req("POST", "/api/email-lists/", list_body("NEW")), 201),
        (req("POST", "/api/contacts/", {"email": "new@example.org"}), 201),
    ],
    ("lists", "read"): [
        (req("GET", "/api/email-lists/"), 200),
        (req("GET", "/api/email-lists/{list}/contacts/"), 200),
        (req("GET", "/api/contacts/{contact}/"), 200),
    ],
    ("lists", "update"): [
        (req("PUT", "/api/email-lists/{list}/", {"description": "d"}), 200),
        (req("PUT", "/api/contacts/{contact}/", {"first_name": "Jo"}), 200),
        (
            req(
                "POST",
                "/api/email-lists/{list}/contacts/",
                lambda w: {"contact_ids": [w.ids["contact"]]},
            ),
            200,
        ),
    ],
    ("lists", "delete"): [
        (req("DELETE", "/api/email-lists/{id}/", fresh="list"), 204),
        (req("DELETE", "/api/contacts/{id}/", fresh="contact"), 204),
    ],
    ("workflows", "create"): [(req("POST", "/api/email-workflows/", workflow_body("NEW")), 201)],
    ("workflows", "read"): [
        (req("GET", "/api/email-workflows/"), 200),
        (req("GET", "/api/email-workflows/{workflow}/"), 200),
    ],
    ("workflows", "update"): [
        (req("PUT", "/api/email-workflows/{workflow}/", {"description": "d"}), 200),
    ],
    ("workflows", "delete"): [(req("DELETE", "/api/email-workflows/{id}/", fresh="workflow"), 204)],
    ("analytics", "read"): [
        (req("GET", "/api/analytics/summary/"), 200),
        (req("GET", "/api/email-campaigns/{campaign}/performance/"), 200),
        (req("GET", "/api/email-campaigns/{campaign}/analytics/"), 200),
        (req("GET", "/api/email-campaigns/{campaign}/?include_analytics=true"), 200),
        (req("GET", "/api/email-campaigns/{campaign}/?include_performance=true"), 200),
    ],
    ("settings", "create"): [
        (
            req(
                "POST",
                "/api/sender-profiles/",
                lambda w: {"profile_name": "P", "from_address": f"p@{w.admin.company.domain}"},
            ),
            201,
        ),
        (req("POST", "/api/api-keys/", {"name": "k", "permissions": ["settings:read"]}), 201),
    ],
    ("settings", "read"): [
        (req("GET", "/api/settings/"), 200),
        (req("GET", "/api/sender-profiles/"), 200),
        (req("GET", "/api/api-keys/"), 200),
    ],
    ("settings", "update"): [
        (req("PUT", "/api/settings/", {"code_prefix": "NEW"}), 200),
        (req("PUT", "/api/sender-profiles/{sender}/", {"from_name": "Acme"}), 200),
    ],
    ("settings", "delete"): [(req("DELETE", "/api/sender-profiles/{id}/", fresh="sender"), 204)],
    ("users", "create"): [
        (
            req(
                "POST",
                "/api/users/",
                {"email": "new.user@example.org", "role": "sales", "password": "p" * 12},
            ),
            201,
        ),
    ],
    ("users", "read"): [(req("GET", "/api/users/"), 200)],
    ("users", "update"): [(req("PUT", "/api/users/{id}/", {"full_name": "X"}, fresh="user"), 200)],
    ("users", "delete"): [(req("DELETE", "/api/users/{id}/", fresh="user"), 204)],
    ("audit", "read"): [(req("GET", "/api/audit-log/"), 200)],
}


def test_every_permission_of_the_matrix_has_cells() -> None:
    granted = {p for perms in ROLES.values() for p in perms if p != "contacts:pii"}
    assert granted <= {f"{r}:{a}" for r, a in CELLS}


async def _world(control: Control, role: str) -> World:
    company = await control.company()
    admin = await control.user(company, "admin")
    ids = await control.fixtures(admin)
    # Another user than the fixtures' creator, so approving is not refused as self-approval.
    user = await control.user(company, role)
    return World(control, admin, user, ids)


@pytest.mark.parametrize("role", sorted(ROLES))
async def test_role_gets_exactly_its_permissions(control: Control, role: str) -> None:
    world = await _world(control, role)
    perms = role_permissions(role)
    failures = []
    for (resource, action), requests in CELLS.items():
        allowed = f"{resource}:{action}" in perms
        for build, ok_status in requests:
            method, path, body = await build(world)
            before = await control.pool.fetchval("SELECT count(*) FROM audit_log")
            r = await control.client.request(method, path, json=body, headers=world.user.auth)
            after = await control.pool.fetchval("SELECT count(*) FROM audit_log")
            if allowed and r.status_code != ok_status:
                failures.append(f"{resource}:{action} {method} {path}: {r.status_code} {r.text}")
            if not allowed:
                if r.status_code != 403 or r.json()["error_code"] != "permission_denied":
                    failures.append(f"{resource}:{action} {method} {path}: {r.status_code}")
                elif after != before:
                    failures.append(f"{resource}:{action} {method} {path}: denied but audited")
    assert not failures, "\n".join(failures)


# --- cross-company isolation ----------------------------------------------------------------

_PATH_KIND = {
    "email-campaigns": "campaign",
    "email-templates": "template",
    "email-lists": "list",
    "email-workflows": "workflow",
    "contacts": "contact",
    "sender-profiles": "sender",
    "users": "user",
    "api-keys": "api_key",
    "imports": "import",
    "blocklist": "blocklist_entry",
    "sending-domains": "domain",
}
_BODIES = {
    "reject_campaign": {"reason": "no"},
    "add_members": {"contact_ids": [1]},
    "send_campaign": {},
    "campaign_test_send": {"addresses": ["x@example.org"]},
}


def _item_endpoints() -> list[Any]:
    return [e for api in ALL_APIS for e in api.endpoints if "{id}" in e.path]


async def test_another_companys_ids_answer_404_on_every_endpoint(control: Control) -> None:
    owner_company = await control.company()
    owner = await control.user(owner_company, "admin")
    ids = await control.fixtures(owner)
    key = await control.client.post(
        "/api/api-keys/", headers=owner.auth, json={"name": "k", "permissions": ["settings:read"]}
    )
    ids["api_key"] = key.json()["id"]
    ids["user"] = owner.id
    imported = await control.client.post(
        f"/api/email-lists/{ids['list']}/imports/",
        headers={**owner.auth, "Content-Type": "text/csv"},
        content=b"email\nnew@example.org\n",
    )
    ids["import"] = imported.json()["id"]
    blocked = await control.client.post(
        "/api/blocklist/", headers=owner.auth, json={"entry": "spam.example"}
    )
    ids["blocklist_entry"] = blocked.json()["id"]
    domain = await control.client.post(
        "/api/sending-domains/", headers=owner.auth, json={"domain": "owner.test"}
    )
    ids["domain"] = domain.json()["id"]
    stranger = await control.user(await control.company(), "admin")
    endpoints = _item_endpoints()
    assert len(endpoints) >= 25
    failures = []
    for endpoint in endpoints:
        kind = _PATH_KIND[re.match(r"/api/([a-z-]+)/", endpoint.path).group(1)]
        path = endpoint.path.format(id=ids[kind], contact_id=ids["contact"])
        body = _BODIES.get(endpoint.handler.__name__, {}) if endpoint.write else None
        if endpoint.raw_body:
            r = await control.client.request(
                endpoint.method,
                path,
                content=b"email\nx@example.org\n",
                headers={**stranger.auth, "Content-Type": endpoint.raw_body},
            )
        else:
            r = await control.client.request(
                endpoint.method,
                path,
                json=body if endpoint.method != "DELETE" else None,
                headers=stranger.auth,
            )
        if r.status_code != 404 or r.json()["error_code"] != "not_found":
            failures.append(f"{endpoint.method} {path}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)
    # ... and the owner's objects are all still there, unchanged.
    for kind in ("campaign", "template", "list", "workflow", "contact", "sender"):
        path = {
            "campaign": "/api/email-campaigns/{}/",
            "template": "/api/email-templates/{}/",
            "list": "/api/email-lists/{}/",
            "workflow": "/api/email-workflows/{}/",
            "contact": "/api/contacts/{}/",
            "sender": "/api/sender-profiles/{}/",
        }[kind].format(ids[kind])
        mine = await control.client.get(path, headers=owner.auth)
        assert mine.status_code == 200, (path, mine.text)
    campaign = (
        await control.client.get(f"/api/email-campaigns/{ids['campaign']}/", headers=owner.auth)
    ).json()
    assert campaign["campaign_status"] == "draft" and campaign["subject_line"] == "Spring is here"


# --- API keys and masking -------------------------------------------------------------------


async def test_api_key_has_only_its_permissions_and_is_revocable(control: Control) -> None:
    company = await control.company()
    admin = await control.user(company, "admin")
    ids = await control.fixtures(admin)
    c = control.client
    r = await c.post(
        "/api/api-keys/",
        headers=admin.auth,
        json={"name": "reporting", "permissions": ["campaigns:read"]},
    )
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["id"]
    assert key.startswith("smc_")
    listed = (await c.get("/api/api-keys/", headers=admin.auth)).json()["results"]
    assert all("key" not in k and key not in str(k) for k in listed)
    stored = await control.pool.fetchval("SELECT secret_hash FROM api_keys WHERE id = $1", key_id)
    assert key.encode() not in stored
    h = {"Authorization": f"Bearer {key}"}
    assert (await c.get(f"/api/email-campaigns/{ids['campaign']}/", headers=h)).status_code == 200
    denied = await c.post(f"/api/email-campaigns/{ids['campaign']}/send/", headers=h, json={})
    assert denied.status_code == 403
    assert (await c.get("/api/email-templates/", headers=h)).status_code == 403
    assert (await c.delete(f"/api/api-keys/{key_id}/", headers=admin.auth)).status_code == 204
    gone = await c.get("/api/email-campaigns/", headers=h)
    assert gone.status_code == 401 and gone.json()["error_code"] == "invalid_token"


async def test_a_key_cannot_grant_more_than_its_creator_holds(control: Control) -> None:
    company = await control.company()
    await control.user(company, "admin")
    specialist = await control.user(company, "email_specialist")
    # Give the specialist settings:create? They have settings:read only: creating keys is 403.
    r = await control.client.post(
        "/api/api-keys/",
        headers=specialist.auth,
        json={"name": "k", "permissions": ["users:delete"]},
    )
    assert r.status_code == 403
    admin2 = await control.user(company, "admin")
    r = await control.client.post(
        "/api/api-keys/", headers=admin2.auth, json={"name": "k", "permissions": ["nope:read"]}
    )
    assert r.status_code == 422


async def test_contact_addresses_are_masked_without_pii_permission(control: Control) -> None:
    company = await control.company()
    admin = await control.user(company, "admin")
    ids = await control.fixtures(admin)
    for role in sorted(ROLES):
        await _check_masking(control, ids, await control.user(company, role), role)


async def _check_masking(control: Control, ids: dict[str, int], user: User, role: str) -> None:
    r = await control.client.get(f"/api/contacts/{ids['contact']}/", headers=user.auth)
    if "lists:read" not in role_permissions(role):
        assert r.status_code == 403, role
        return
    contact = r.json()
    if "contacts:pii" in role_permissions(role):
        assert contact["email"].startswith("jane") and contact["first_name"] == "J"
        assert contact["email_masked"] is False
    else:
        assert re.fullmatch(r"j\*\*\*@example\.net", contact["email"]), contact
        assert contact["first_name"] is None and contact["email_masked"] is True
        members = await control.client.get(
            f"/api/email-lists/{ids['list']}/contacts/", headers=user.auth
        )
        assert "jane" not in members.text
        search = await control.client.get("/api/contacts/?search=jane", headers=user.auth)
        assert search.status_code == 403
