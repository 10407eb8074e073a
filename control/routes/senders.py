"""Sender profiles: `/api/sender-profiles/`. The From address must be on one of the
company's sending domains that may send (mta/sending_domains.py: configured, or added and
DKIM-verified), so a campaign can never be sent from a domain the server does not sign for."""

from __future__ import annotations

from typing import Any

from control.errors import InUse, ValidationFailed
from control.fields import Field, Schema, ro
from control.resource import ResourceSpec, register
from control.routing import Api, Call
from mta.dns import to_ascii
from mta.queries import Queries
from mta.sending_domains import may_send_from

SQL = Queries("control")

SCHEMA = Schema(
    "SenderProfile",
    (
        ro("id", "id"),
        Field("profile_name", required=True, min_length=1, max_length=100),
        Field("from_name", max_length=200, default=""),
        Field("from_address", "email", required=True),
        Field("reply_to", "email", nullable=True, default=None),
        ro("created_at", "datetime"),
        ro("updated_at", "datetime"),
    ),
)
FILTERS = (Field("search", max_length=100),)


async def check_domain(call: Call, data: dict[str, Any], current: Any = None) -> None:
    address = data.get("from_address")
    if address is None:
        return
    try:
        domain = to_ascii(address.rpartition("@")[2])
    except (UnicodeError, ValueError):
        raise ValidationFailed({"from_address": "the domain is not a valid name"}) from None
    domains = call.services.domains
    if not await may_send_from(
        call.db, call.company_id, domain, require_verified=domains.require_verified
    ):
        raise ValidationFailed(
            {"from_address": f"{domain} is not one of your company's verified sending domains"}
        )


async def before_delete(call: Call, current: Any) -> None:
    users = await call.db.fetch(SQL["campaigns-using-sender"], current["id"], call.company_id)
    if users:
        raise InUse(
            "the sender profile is used by active campaigns",
            campaigns=[{"id": r["id"], "campaign_code": r["campaign_code"]} for r in users],
        )


api = Api()
register(
    api,
    ResourceSpec(
        name="sender_profile",
        sql="sender",
        path="/api/sender-profiles/",
        tag="sender profiles",
        perm="settings",
        schema=SCHEMA,
        filters=FILTERS,
        before_create=check_domain,
        before_update=check_domain,
        before_delete=before_delete,
    ),
)
