"""Contacts (subscribers with their consent record) and list membership.

    /api/contacts/                          CRUD, search, filter by list and opt-in state
    /api/contacts/{id}/lists/               the contact's lists
    /api/contacts/{id}/export/              everything held about the contact (GDPR Art. 15/20)
    /api/contacts/{id}/erase/               erase the contact (GDPR Art. 17)
    /api/email-lists/{id}/contacts/         members (GET), subscribe contacts (POST)
    /api/email-lists/{id}/contacts/{contact_id}/   unsubscribe one (DELETE)

Field-level security: callers without `contacts:pii` see masked addresses (`j***@example.com`)
and no names, IP or attributes, and cannot search by text. The audit log never stores a
contact's personal data (it is append-only, so it could not honour an erasure).
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from control.errors import Conflict, Forbidden, NotFound, ValidationFailed
from control.fields import Field, Schema, ro
from control.permissions import CONTACT_PII, Action, permission
from control.resource import ResourceSpec, register
from control.routing import Api, Call, Page
from mta import erasure
from mta.queries import Queries

SQL = Queries("control")
CONSENT_SOURCES = ("form", "import", "api", "manual", "crm_sync", "event")
OPT_IN = ("none", "pending", "confirmed")
MAX_BATCH = 1000

SCHEMA = Schema(
    "Contact",
    (
        ro("id", "id"),
        Field("email", "email", required=True),
        Field("first_name", "header", nullable=True, max_length=100),
        Field("last_name", "header", nullable=True, max_length=100),
        Field("attributes", "object", default=dict),
        Field("consent_source", enum=CONSENT_SOURCES, default="api"),
        Field("consent_at", "datetime", nullable=True),
        Field("consent_ip", nullable=True, max_length=45, description="IPv4 or IPv6 address"),
        Field("opt_in_state", enum=OPT_IN, default="none"),
        ro("confirmed_at", "datetime", nullable=True),
        ro("email_masked", "boolean"),
        ro("created_at", "datetime"),
        ro("updated_at", "datetime"),
    ),
)
FILTERS = (
    Field("search", max_length=100, description="text in address or name (needs contacts:pii)"),
    Field("list_id", "id", description="subscribed members of this list"),
    Field("opt_in_state", enum=OPT_IN),
)


def mask_address(address: str | None) -> str | None:
    """`jane.doe@example.com` -> `j***@example.com`: enough to tell rows apart, not to mail."""
    if not address:
        return address
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def serialize(call: Call, row: Any) -> dict[str, Any]:
    data = {f.name: row[f.name] for f in SCHEMA.fields if f.name != "email_masked"}
    if call.principal is not None and call.principal.sees_pii:
        data["email_masked"] = False
        return data
    return masked(data)


def masked(data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        "email": mask_address(data["email"]),
        "first_name": None,
        "last_name": None,
        "attributes": {},
        "consent_ip": None,
        "email_masked": True,
    }


def audit_view(row: Any) -> dict[str, Any]:
    return masked({f.name: row[f.name] for f in SCHEMA.fields if f.name != "email_masked"})


def _check_ip(data: dict[str, Any]) -> None:
    value = data.get("consent_ip")
    if value is not None:
        try:
            data["consent_ip"] = str(ipaddress.ip_address(value))
        except ValueError:
            raise ValidationFailed({"consent_ip": "must be an IPv4 or IPv6 address"}) from None


async def _check_not_erased(call: Call, address: str) -> None:
    if await call.db.fetchval(SQL["address-erased"], call.company_id, address):
        raise Conflict(
            "this address was erased at its owner's request and cannot be added again",
            field="email",
            reason="address_erased",
        )


async def before_list(call: Call) -> None:
    # Text search matches addresses and names: a probe for whether someone is a subscriber.
    if call.query.get("search") and not (call.principal and call.principal.sees_pii):
        raise Forbidden(f"searching contacts needs {CONTACT_PII}", permission=CONTACT_PII)


async def before_create(call: Call, data: dict[str, Any]) -> None:
    _check_ip(data)
    await _check_not_erased(call, data["email"])


async def before_update(call: Call, data: dict[str, Any], current: Any) -> None:
    _check_ip(data)
    if "email" in data and data["email"] != current["email"]:
        await _check_not_erased(call, data["email"])


api = Api()
spec = ResourceSpec(
    name="contact",
    sql="contact",
    path="/api/contacts/",
    tag="contacts",
    perm="lists",
    schema=SCHEMA,
    filters=FILTERS,
    before_list=before_list,
    before_create=before_create,
    before_update=before_update,
    serialize=serialize,
    audit_view=audit_view,
)
register(api, spec)


# --- membership -----------------------------------------------------------------------------

MEMBER = Schema(
    "ListMember",
    (
        *SCHEMA.fields,
        ro("membership_state", enum=("subscribed", "unsubscribed")),
        ro("subscribed_at", "datetime"),
        ro("unsubscribed_at", "datetime", nullable=True),
    ),
)
MEMBERSHIP = Schema(
    "ContactMembership",
    (
        ro("list_id", "id"),
        ro("list_code"),
        ro("list_name"),
        ro("state", enum=("subscribed", "unsubscribed")),
        ro("subscribed_at", "datetime"),
        ro("unsubscribed_at", "datetime", nullable=True),
    ),
)
ADD_MEMBERS = Schema(
    "AddMembers",
    (Field("contact_ids", "array", items="id", required=True),),
)


async def _list_or_404(call: Call) -> int:
    list_id = call.ids["id"]
    if not await call.db.fetchval(SQL["list-exists"], list_id, call.company_id):
        raise NotFound("email list")
    return list_id


@api.add(
    "GET",
    "/api/email-lists/{id}/contacts/",
    "Members of a list, with their membership state",
    "lists",
    permission=permission("lists", Action.READ),
    query=(Field("state", enum=("subscribed", "unsubscribed")),),
    response=MEMBER,
    paginated=True,
)
async def list_members(call: Call) -> Page:
    list_id = await _list_or_404(call)
    limit, offset = call.limit_offset
    rows = await call.db.fetch(
        SQL["list-members"], call.company_id, list_id, call.query["state"], limit, offset
    )
    page = call.page(rows)
    extra = ("membership_state", "subscribed_at", "unsubscribed_at")
    page.rows = [{**serialize(call, r), **{k: r[k] for k in extra}} for r in page.rows]
    return page


@api.add(
    "POST",
    "/api/email-lists/{id}/contacts/",
    "Subscribe contacts to a list",
    "lists",
    permission=permission("lists", Action.UPDATE),
    body=ADD_MEMBERS,
)
async def add_members(call: Call) -> dict[str, Any]:
    list_id = await _list_or_404(call)
    ids = sorted(set((call.body or {})["contact_ids"]))
    if not ids or len(ids) > MAX_BATCH:
        raise ValidationFailed({"contact_ids": f"give 1 to {MAX_BATCH} contact ids"})
    added = [
        r["contact_id"]
        for r in await call.db.fetch(SQL["add-members"], call.company_id, list_id, ids)
    ]
    call.audit("email_list.add_members", "email_list", list_id, None, {"contact_ids": added})
    return {"list_id": list_id, "subscribed": added}


@api.add(
    "DELETE",
    "/api/email-lists/{id}/contacts/{contact_id}/",
    "Unsubscribe a contact from a list (the membership history is kept)",
    "lists",
    permission=permission("lists", Action.UPDATE),
    status=204,
)
async def remove_member(call: Call) -> None:
    list_id = await _list_or_404(call)
    contact_id = call.ids["contact_id"]
    row = await call.db.fetchrow(SQL["remove-member"], call.company_id, list_id, contact_id)
    if row is None:
        raise NotFound("subscribed contact")
    call.audit("email_list.remove_member", "email_list", list_id, {"contact_id": contact_id}, None)


@api.add(
    "GET",
    "/api/contacts/{id}/lists/",
    "A contact's lists and membership states",
    "contacts",
    permission=permission("lists", Action.READ),
    response=MEMBERSHIP,
    paginated=True,
)
async def contact_lists(call: Call) -> Page:
    if await call.db.fetchrow(SQL["get-contact"], call.ids["id"], call.company_id) is None:
        raise NotFound("contact")
    # A contact is on a handful of lists: all fetched (the GDPR export shares the query),
    # paged here.
    rows = await call.db.fetch(SQL["contact-memberships"], call.ids["id"], call.company_id)
    limit, offset = call.limit_offset
    return call.page(rows[offset : offset + limit], total=len(rows))


# --- privacy (GDPR / CCPA) ------------------------------------------------------------------


@api.add(
    "GET",
    "/api/contacts/{id}/export/",
    "Everything held about a contact (GDPR Art. 15 and 20)",
    "contacts",
    permission=CONTACT_PII,
)
async def export_contact(call: Call) -> dict[str, Any]:
    if not call.principal or not call.principal.can(permission("lists", Action.READ)):
        raise Forbidden("permission lists:read required", permission="lists:read")
    row = await call.db.fetchrow(SQL["get-contact"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("contact")
    memberships = await call.db.fetch(SQL["contact-memberships"], row["id"], call.company_id)
    messages = await call.db.fetch(SQL["contact-messages"], call.company_id, row["email"])
    contact = {k: v for k, v in dict(row).items() if k not in ("company_id",)}
    return {
        "contact": contact,
        "consent": {
            k: row[k]
            for k in ("consent_source", "consent_at", "consent_ip", "opt_in_state", "confirmed_at")
        },
        "lists": [dict(m) for m in memberships],
        "messages": [dict(m) for m in messages],
    }


@api.add(
    "POST",
    "/api/contacts/{id}/erase/",
    "Erase a contact (GDPR Art. 17): personal data removed, history anonymised, the address "
    "kept only as a hash so it is never mailed again",
    "contacts",
    permission=CONTACT_PII,
)
async def erase_contact(call: Call) -> dict[str, Any]:
    if not call.principal or not call.principal.can(permission("lists", Action.DELETE)):
        raise Forbidden("permission lists:delete required", permission="lists:delete")
    row = await call.db.fetchrow(SQL["erase-contact"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("contact")
    if row["email"]:
        # The mail path's own hashed suppression: transactional mail is blocked too.
        await erasure.suppress_erased_address(call.db, call.company_id, row["email"])
        digest = hashlib.sha256(row["email"].encode()).hexdigest()
        placeholder = f"erased-{digest[:16]}@erased.invalid"  # RFC 2606 .invalid: never routable
        await call.db.execute(
            SQL["anonymise-recipients"], call.company_id, row["email"], placeholder
        )
    call.audit("contact.erase", "contact", row["id"], None, {"erased": True})
    return {"id": row["id"], "erased": True}
