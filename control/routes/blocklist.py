"""The company blocklist (blueprint §6.2 `is_compliant_with_blacklist`): addresses and whole
domains a company's campaigns never mail, under the settings permission.

GET/POST /api/blocklist/      list entries (filter by kind, search) / add one
DELETE /api/blocklist/{id}/   remove one

An entry is an address (`jo@example.com`) or a domain (`example.com`: every address at exactly
that domain; subdomains are entries of their own). Entries are stored lower-cased with an ASCII
(IDNA) domain, as contacts' addresses are, so the audience compares them directly.
"""

from __future__ import annotations

from typing import Any

from control.email_syntax import AddressError, normalize_address
from control.errors import Conflict, NotFound, ValidationFailed
from control.fields import Field, Schema, ro
from control.permissions import Action, permission
from control.routing import Api, Call, Page
from mta.queries import Queries

SQL = Queries("control")
KINDS = ("address", "domain")

ENTRY = Schema(
    "BlocklistEntry",
    (
        ro("id", "id"),
        Field(
            "entry",
            required=True,
            min_length=1,
            max_length=254,
            description="an address, or a domain (every address at it)",
        ),
        ro("kind", enum=KINDS),
        Field("reason", "text", max_length=500, default=""),
        ro("created_by_user_id", "id", nullable=True),
        ro("created_at", "datetime"),
    ),
)
FILTERS = (Field("kind", enum=KINDS), Field("search", max_length=254))

api = Api()


def normalize_entry(text: str) -> tuple[str, str]:
    """(entry, kind) as stored; ValidationFailed when it is neither an address nor a domain."""
    text = text.strip()
    try:
        if "@" in text:
            return normalize_address(text), "address"
        return normalize_address(f"x@{text}").partition("@")[2], "domain"
    except AddressError as exc:
        raise ValidationFailed({"entry": str(exc)}) from None


def _out(row: Any) -> dict[str, Any]:
    return {f.name: row[f.name] for f in ENTRY.fields}


@api.add(
    "GET",
    "/api/blocklist/",
    "The company's blocklist (addresses and domains campaigns never mail)",
    "settings",
    permission=permission("settings", Action.READ),
    query=FILTERS,
    response=ENTRY,
    paginated=True,
)
async def list_blocklist(call: Call) -> Page:
    rows = await call.db.fetch(
        SQL["list-blocklist"],
        call.company_id,
        call.query.get("kind"),
        call.query.get("search"),
        *call.limit_offset,
    )
    page = call.page(rows)
    page.rows = [_out(r) for r in page.rows]
    return page


@api.add(
    "POST",
    "/api/blocklist/",
    "Block an address or a domain from the company's campaigns",
    "settings",
    permission=permission("settings", Action.CREATE),
    body=ENTRY,
    response=ENTRY,
    status=201,
)
async def add_blocklist_entry(call: Call) -> dict[str, Any]:
    body = call.body or {}
    entry, kind = normalize_entry(body["entry"])
    row = await call.db.fetchrow(
        SQL["insert-blocklist-entry"],
        call.company_id,
        entry,
        kind,
        body.get("reason") or "",
        call.user_id,
    )
    if row is None:
        raise Conflict(f"{entry} is already on the blocklist", field="entry")
    result = _out(row)
    call.audit("blocklist.create", "blocklist", row["id"], None, result)
    return result


@api.add(
    "DELETE",
    "/api/blocklist/{id}/",
    "Remove an entry from the blocklist",
    "settings",
    permission=permission("settings", Action.DELETE),
    status=204,
)
async def delete_blocklist_entry(call: Call) -> None:
    row = await call.db.fetchrow(SQL["delete-blocklist-entry"], call.company_id, call.ids["id"])
    if row is None:
        raise NotFound("blocklist entry")
    call.audit("blocklist.delete", "blocklist", row["id"], _out(row), None)
