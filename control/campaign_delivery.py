"""Campaign mail rendered at delivery time (issue 10): the delivery engine's `MessageRenderer`.

The queue holds one small row per recipient pointing at a message whose `campaign_version_id`
names the frozen campaign version. For each claimed batch this renderer reads the version
(cached: compiled once per version and process) and the batch's contacts (one query), renders
each recipient with control/rendering.py, adds the tracker's links, pixel and List-Unsubscribe
through the links factory the daemon wires in (tracker/prepare.py `CampaignLinks`), and composes
the message (control/campaign_message.py). DKIM signs after this, in the engine.

A contact deleted since the send is rendered from its address alone; a render that fails (a
template limit hit with this contact's data) is reported as a reason and the recipient bounces
with it: every queued recipient ends delivered, bounced or expired.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import asyncpg

from control import metrics
from control.campaign_message import Envelope, message_bytes
from control.rendering import (
    CampaignContent,
    CompiledCampaign,
    Links,
    RenderFailed,
    TemplateRefused,
)
from mta.queries import Queries
from mta.queue import ClaimedRecipient, StoredMessage

log = logging.getLogger("sendmill.campaigns")
SQL = Queries("control")
YIELD_EVERY = 16  # renders between yields to the event loop (~0.2-1 ms each)


class RecipientLinks(Protocol):
    """One recipient's tracked links (tracker.prepare.RecipientLinks)."""

    def unsubscribe(self) -> str: ...
    def preferences(self) -> str: ...
    def view(self) -> str: ...
    def html(self, body_html: str) -> str: ...
    def list_unsubscribe(self) -> str: ...


# (company_id, campaign_id, list_id, recipient_id, tenant tracking settings) -> links
LinksFactory = Callable[[int, int, int, int, Mapping[str, Any]], RecipientLinks]


class _Version:
    __slots__ = ("compiled", "error", "row", "tracking")

    def __init__(self, row: Any) -> None:
        self.row = row
        self.tracking = row["tracking"] if isinstance(row["tracking"], dict) else {}
        self.compiled: CompiledCampaign | None = None
        self.error = ""
        try:
            self.compiled = compile_version(row)
        except TemplateRefused as exc:  # saved before the save-time check existed
            self.error = str(exc)


def compile_version(row: Any) -> CompiledCampaign:
    return CompiledCampaign(
        CampaignContent(
            subject=row["subject"],
            html=row["html"],
            text=row["text_part"],
            preheader=row["preheader"],
            from_name=row["from_name"],
            css=row["css"],
            campaign_name=row["campaign_name"],
            campaign_code=row["campaign_code"],
        )
    )


class CampaignRenderer:
    """`mta.delivery.MessageRenderer` for campaign mail."""

    VERSIONS = 64  # compiled versions kept per process

    def __init__(self, db: asyncpg.Pool, links: LinksFactory) -> None:
        self._db = db
        self._links = links
        self._versions: OrderedDict[int, _Version] = OrderedDict()

    async def _version(self, message: StoredMessage) -> _Version | None:
        version_id = message.campaign_version_id
        assert version_id is not None
        hit = self._versions.get(version_id)
        if hit is not None:
            self._versions.move_to_end(version_id)
            return hit
        row = await self._db.fetchrow(
            SQL["campaign-version-for-delivery"], version_id, message.company_id
        )
        if row is None:
            return None
        # Compiling a large template takes milliseconds: off the event loop.
        version = await asyncio.to_thread(_Version, row)
        self._versions[version_id] = version
        if len(self._versions) > self.VERSIONS:
            self._versions.popitem(last=False)
        return version

    async def render(
        self, message: StoredMessage, recipients: Sequence[ClaimedRecipient]
    ) -> dict[int, bytes | str]:
        version = await self._version(message)
        if version is None:
            return {c.id: "campaign version not found" for c in recipients}
        if version.compiled is None:
            return {c.id: version.error for c in recipients}
        ids = [c.contact_id for c in recipients if c.contact_id is not None]
        contacts = {
            r["id"]: r
            for r in await self._db.fetch(SQL["campaign-contacts"], message.company_id, ids)
        }
        out: dict[int, bytes | str] = {}
        for n, c in enumerate(recipients, 1):
            contact = contacts.get(c.contact_id) if c.contact_id is not None else None
            out[c.id] = self.render_one(version, c, contact)
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        return out

    def render_one(self, version: _Version, c: ClaimedRecipient, contact: Any) -> bytes | str:
        row = version.row
        assert version.compiled is not None
        links = self._links(
            row["company_id"], row["campaign_id"], row["list_id"], c.id, version.tracking
        )
        try:
            rendered = version.compiled.render(
                dict(contact) if contact is not None else None,
                c.recipient,
                Links(links.unsubscribe(), links.preferences(), links.view()),
            )
        except RenderFailed as exc:
            metrics.CAMPAIGN_RENDERS.labels("failed").inc()
            log.warning("campaign version %s, recipient %s: %s", row["id"], c.id, exc)
            return str(exc)[:200]
        metrics.CAMPAIGN_RENDERS.labels("ok").inc()
        if rendered.missing:
            metrics.CAMPAIGN_MISSING_VARIABLES.inc(rendered.missing)
        rendered = replace(rendered, html=links.html(rendered.html))
        domain = row["from_address"].rpartition("@")[2]
        envelope = Envelope(
            from_address=row["from_address"],
            to_address=c.recipient,
            reply_to=row["reply_to"],
            message_id=f"<c{row['campaign_id']}.v{row['id']}.r{c.id}@{domain}>",
            list_unsubscribe=links.list_unsubscribe(),
        )
        return message_bytes(rendered, envelope)
