"""Sending domains of the caller's company (settings permission), managed at run time:

GET/POST /api/sending-domains/              list; add one (DKIM keys generated, records returned)
GET/DELETE /api/sending-domains/{id}/       one domain with the DNS records to publish; remove it
POST /api/sending-domains/{id}/verify/      check every record in DNS now; activates keys
POST /api/sending-domains/{id}/rotate/      new DKIM keys under a new selector (overlap kept)

The work is mta's (mta/sending_domains.py): the mail path reads the same tables.
"""

from __future__ import annotations

from typing import Any

from control.fields import Field, Schema, ro
from control.permissions import Action, permission
from control.routing import Api, Call, Page

KEY = Schema(
    "DkimKey",
    (
        ro("selector"),
        ro("algorithm"),
        ro("state", description="pending, active or retiring"),
        ro("created_at", "datetime"),
        ro("activated_at", "datetime", nullable=True),
        ro("retire_at", "datetime", nullable=True),
    ),
)
RECORD = Schema(
    "DnsRecord",
    (
        ro("purpose", description="dkim, spf, dmarc, bounce_mx or tracking_cname"),
        ro("type", description="TXT, MX or CNAME"),
        ro("name", description="fully qualified"),
        ro("host", description="relative to the domain, as DNS hosts' forms ask"),
        ro("value"),
        ro(
            "strings",
            "array",
            optional=True,
            description="TXT only: the value in strings of at most 255 bytes",
        ),
        ro("zone_line", description="the record as a zone-file line"),
        ro("required", "boolean"),
    ),
)
DOMAIN = Schema(
    "SendingDomain",
    (
        ro("id", "id"),
        ro("domain"),
        ro("origin", description="api, or config (the server's file: change it there)"),
        ro("sendable", "boolean", description="mail From it is accepted (DKIM verified)"),
        ro("verified_at", "datetime", nullable=True),
        ro("checked_at", "datetime", nullable=True),
        ro("dkim_keys", "array", shape=KEY),
        ro("records", "array", shape=RECORD),
        ro(
            "last_check",
            "array",
            nullable=True,
            description="per record: status correct, wrong (detail says how), missing, unchecked",
        ),
    ),
)
NEW_DOMAIN = Schema(
    "NewSendingDomain",
    (
        Field("domain", required=True, min_length=3, max_length=253),
        Field("ed25519", "boolean", default=False, description="an Ed25519 key beside RSA"),
    ),
)
ROTATE = Schema(
    "DkimRotation",
    (Field("ed25519", "boolean", description="default: the algorithms in use"),),
)

api = Api()


def _public(view: dict[str, Any]) -> dict[str, Any]:
    view = dict(view)
    view.pop("company", None)  # the caller's own
    return view


@api.add(
    "GET",
    "/api/sending-domains/",
    "The company's sending domains",
    "sending domains",
    permission=permission("settings", Action.READ),
    response=DOMAIN,
    paginated=True,
)
async def list_domains(call: Call) -> Page:
    views = await call.services.domains.list(call.company_id)
    size, offset = call.limit_offset
    rows = [_public(v) for v in views[offset : offset + size]]
    return Page(rows, len(views), call.query["page"], call.query["page_size"])


@api.add(
    "POST",
    "/api/sending-domains/",
    "Add a sending domain: DKIM keys are generated; publish the records returned",
    "sending domains",
    permission=permission("settings", Action.CREATE),
    body=NEW_DOMAIN,
    response=DOMAIN,
    status=201,
)
async def add_domain(call: Call) -> dict[str, Any]:
    body = call.body or {}
    view = await call.services.domains.add(
        call.company_id, body["domain"], ed25519=bool(body.get("ed25519"))
    )
    call.audit("sending_domain.create", "sending_domain", view["id"], None, _summary(view))
    return _public(view)


@api.add(
    "GET",
    "/api/sending-domains/{id}/",
    "A sending domain and the DNS records to publish",
    "sending domains",
    permission=permission("settings", Action.READ),
    response=DOMAIN,
)
async def get_domain(call: Call) -> dict[str, Any]:
    return _public(await call.services.domains.get(call.company_id, call.ids["id"]))


@api.add(
    "POST",
    "/api/sending-domains/{id}/verify/",
    "Check the domain's records in DNS now; DKIM keys that verify start signing",
    "sending domains",
    permission=permission("settings", Action.UPDATE),
    response=DOMAIN,
)
async def verify_domain(call: Call) -> dict[str, Any]:
    view = await call.services.domains.verify(call.company_id, call.ids["id"])
    call.audit("sending_domain.verify", "sending_domain", view["id"], None, _summary(view))
    return _public(view)


@api.add(
    "POST",
    "/api/sending-domains/{id}/rotate/",
    "New DKIM keys under a new selector; they sign once verified, the old stay published",
    "sending domains",
    permission=permission("settings", Action.UPDATE),
    body=ROTATE,
    partial=True,
    response=DOMAIN,
)
async def rotate_domain(call: Call) -> dict[str, Any]:
    ed25519 = (call.body or {}).get("ed25519")
    view = await call.services.domains.rotate(call.company_id, call.ids["id"], ed25519=ed25519)
    call.audit("sending_domain.rotate", "sending_domain", view["id"], None, _summary(view))
    return _public(view)


@api.add(
    "DELETE",
    "/api/sending-domains/{id}/",
    "Remove a sending domain and its keys (mail already queued is still delivered)",
    "sending domains",
    permission=permission("settings", Action.DELETE),
    status=204,
)
async def delete_domain(call: Call) -> None:
    await call.services.domains.delete(call.company_id, call.ids["id"])
    call.audit("sending_domain.delete", "sending_domain", call.ids["id"])


def _summary(view: dict[str, Any]) -> dict[str, Any]:
    keys = [(k["selector"], k["state"]) for k in view["dkim_keys"]]
    return {"domain": view["domain"], "sendable": view["sendable"], "dkim_keys": keys}
