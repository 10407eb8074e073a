"""Sender profiles: `/api/sender-profiles/`. The From address must be on one of the
company's sending domains that may send (mta/sending_domains.py: configured, or added and
DKIM-verified), so a campaign can never be sent from a domain the server does not sign for."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address as HeaderAddress
from typing import Any

from control.errors import InUse, ValidationFailed
from control.fields import Field, Schema, ro
from control.resource import ResourceSpec, register
from control.routing import Api, Call
from mta.dns import to_ascii
from mta.originator import AmbiguousOriginator, read_originator
from mta.queries import Queries
from mta.sending_domains import sendable_domains

SQL = Queries("control")

SCHEMA = Schema(
    "SenderProfile",
    (
        ro("id", "id"),
        Field("profile_name", "header", required=True, min_length=1, max_length=100),
        Field("from_name", "header", max_length=200, default=""),
        Field("from_address", "email", required=True),
        Field("reply_to", "email", nullable=True, default=None),
        ro("created_at", "datetime"),
        ro("updated_at", "datetime"),
    ),
)
FILTERS = (Field("search", max_length=100),)


async def check_domain(call: Call, data: dict[str, Any], current: Any = None) -> None:
    """The From the profile composes must pass the submission check (mta/originator.py): its
    address on a sending domain of the company, and no other domain shown in its name."""
    if "from_address" not in data and "from_name" not in data:
        return
    address = data.get("from_address") or current["from_address"]
    name = data.get("from_name", current["from_name"] if current is not None else "")
    try:
        domain = to_ascii(address.rpartition("@")[2])
    except (UnicodeError, ValueError):
        raise ValidationFailed({"from_address": "the domain is not a valid name"}) from None
    owned = frozenset(
        await sendable_domains(
            call.db, call.company_id, require_verified=call.services.domains.require_verified
        )
    )
    if domain not in owned:
        raise ValidationFailed(
            {"from_address": f"{domain} is not one of your company's verified sending domains"}
        )
    try:
        header = str(HeaderAddress(display_name=name or "", addr_spec=address))
        originator = read_originator([header], [])
    except (AmbiguousOriginator, ValueError, IndexError, HeaderParseError):
        raise ValidationFailed({"from_name": "cannot be written as a From header"}) from None
    foreign = originator.domains - owned
    if foreign:
        raise ValidationFailed(
            {"from_name": f"shows an address at {min(foreign)}, not a sending domain of yours"}
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
