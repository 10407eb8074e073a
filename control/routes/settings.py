"""Company settings and API keys.

GET/PUT /api/settings/      the company's profile: campaign code prefix, actions that need
                            TOTP (mfa_required_for), and the shared settings document's
                            `approval` and `sending` sections (rules in campaign_status.py)
GET/POST /api/api-keys/     API keys (the key is shown once, at creation)
DELETE /api/api-keys/{id}/  revoke a key
"""

from __future__ import annotations

from typing import Any

from control import campaign_status as cs
from control.errors import NotFound
from control.fields import Field, Schema, ro
from control.permissions import ALL_PERMISSIONS, Action, permission
from control.routing import Api, Call, Page
from mta.queries import Queries

SQL = Queries("control")
MFA_ACTIONS = ("send", "approve")

SETTINGS = Schema(
    "CompanySettings",
    (
        ro("company_id", "id"),
        ro("company_name"),
        Field("code_prefix", min_length=1, max_length=20, pattern=r"^[A-Za-z0-9-]+$"),
        Field("mfa_required_for", "array", items="string", enum=MFA_ACTIONS),
        Field("approval", "object", description="{required, audience_threshold}"),
        Field(
            "sending", "object", description="{timezone, window: {days, start, end}, daily_limit}"
        ),
    ),
)
API_KEY = Schema(
    "ApiKey",
    (
        ro("id", "id"),
        Field("name", required=True, min_length=1, max_length=100),
        Field(
            "permissions",
            "array",
            items="string",
            enum=tuple(sorted(ALL_PERMISSIONS)),
            required=True,
        ),
        ro("key_prefix"),
        ro("created_at", "datetime"),
        ro("last_used_at", "datetime", nullable=True),
        ro("revoked_at", "datetime", nullable=True),
    ),
)
NEW_API_KEY = Schema("NewApiKey", (*API_KEY.fields, ro("key", description="shown once")))

api = Api()


async def _settings(call: Call) -> dict[str, Any]:
    profile = dict(await call.db.fetchrow(SQL["get-profile"], call.company_id))
    document = await call.db.fetchval(SQL["company-settings"], call.company_id) or {}
    profile["approval"] = document.get("approval", {})
    profile["sending"] = document.get("sending", {})
    return profile


@api.add(
    "GET",
    "/api/settings/",
    "The company's settings",
    "settings",
    permission=permission("settings", Action.READ),
    response=SETTINGS,
)
async def get_settings(call: Call) -> dict[str, Any]:
    return await _settings(call)


@api.add(
    "PUT",
    "/api/settings/",
    "Change the company's settings (only the fields given)",
    "settings",
    permission=permission("settings", Action.UPDATE),
    body=SETTINGS,
    partial=True,
    response=SETTINGS,
)
async def update_settings(call: Call) -> dict[str, Any]:
    before = await _settings(call)
    data = dict(call.body or {})
    sections: dict[str, Any] = {k: data.pop(k) for k in ("approval", "sending") if k in data}
    # Parsed by the rules that will read them, so a bad document is refused now (422).
    if "approval" in sections:
        cs.ApprovalPolicy.from_settings(sections)
    if "sending" in sections:
        cs.SendingPolicy.from_settings(sections)
    await call.db.execute(SQL["ensure-profile"], call.company_id)
    if data:
        await call.db.execute(SQL["update-profile"], call.company_id, data)
    if sections:
        await call.db.execute(SQL["merge-company-settings"], call.company_id, sections)
    after = await _settings(call)
    call.audit("settings.update", "company", call.company_id, before, after)
    return after


@api.add(
    "GET",
    "/api/api-keys/",
    "List API keys",
    "settings",
    permission=permission("settings", Action.READ),
    response=API_KEY,
    paginated=True,
)
async def list_api_keys(call: Call) -> Page:
    rows = await call.db.fetch(SQL["list-api-keys"], call.company_id, *call.limit_offset)
    page = call.page(rows)
    page.rows = [{f.name: r[f.name] for f in API_KEY.fields} for r in page.rows]
    return page


@api.add(
    "POST",
    "/api/api-keys/",
    "Create an API key (shown once)",
    "settings",
    permission=permission("settings", Action.CREATE),
    body=API_KEY,
    response=NEW_API_KEY,
    status=201,
)
async def create_api_key(call: Call) -> dict[str, Any]:
    assert call.principal is not None
    body = call.body or {}
    issued = await call.services.auth.create_api_key(
        call.db, call.principal, body["name"], body["permissions"]
    )
    record = {f.name: issued.record[f.name] for f in API_KEY.fields}
    call.audit("api_key.create", "api_key", record["id"], None, record)
    return {**record, "key": issued.key}


@api.add(
    "DELETE",
    "/api/api-keys/{id}/",
    "Revoke an API key",
    "settings",
    permission=permission("settings", Action.DELETE),
    changes_principals=True,
    status=204,
)
async def revoke_api_key(call: Call) -> None:
    row = await call.db.fetchrow(SQL["revoke-api-key"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("API key")
    call.audit("api_key.revoke", "api_key", row["id"], None, {"revoked_at": row["revoked_at"]})
