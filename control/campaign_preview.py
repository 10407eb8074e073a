"""A campaign as one contact would get it, before it is sent (issue 10, point 7): the preview
(subject, from name, HTML and text rendered for a chosen contact) and the test send (that
rendering, subject prefixed "[Test]", to up to ten addresses through the mail queue).

Both render the campaign as it is now (not a frozen version) with the one renderer
(control/rendering.py), compiled off the event loop. Links in them are inert (`#test-…`):
a preview or a test carries no tracking token, so nothing it does is counted, and test mail
is queued as transactional mail without the campaign's id, never in its analytics.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from control.campaign_message import Envelope, message_bytes
from control.rendering import CampaignContent, CompiledCampaign, Links, Rendered
from mta import queue
from mta.queries import Queries

SQL = Queries("control")
INERT = Links("#test-unsubscribe", "#test-preferences", "#test-view-online")
TEST_PREFIX = "[Test] "
MAX_TEST_ADDRESSES = 10


def content_of(campaign: Any, template: Any, sender: Any) -> CampaignContent:
    return CampaignContent(
        subject=campaign["subject_line"],
        html=template["html_content"],
        text=template["text_content"],
        preheader=campaign["preheader_text"],
        from_name=sender["from_name"] if sender is not None else "",
        css=template["css_styles"],
        campaign_name=campaign["campaign_name"],
        campaign_code=campaign["campaign_code"],
    )


async def render_for(content: CampaignContent, contact: Any, address: str) -> Rendered:
    """Compile and render off the event loop (TemplateRefused / RenderFailed propagate)."""

    def work() -> Rendered:
        return CompiledCampaign(content).render(
            dict(contact) if contact is not None else None, address, INERT
        )

    return await asyncio.to_thread(work)


async def send_tests(
    db: asyncpg.Pool | asyncpg.Connection,
    company_id: int,
    rendered: Rendered,
    sender: Any,
    addresses: list[str],
    max_age: float,
) -> list[int]:
    """One message per address, queued; the queue row ids."""
    ids = []
    from_address = sender["from_address"].lower()
    for address in addresses:
        body = message_bytes(
            rendered,
            Envelope(from_address, address, sender["reply_to"], prefix_subject=TEST_PREFIX),
        )
        rows = await queue.enqueue(
            db,
            queue.Submission(
                company_id=company_id,
                credential_id=None,
                mail_from=from_address,
                from_domain=from_address.rpartition("@")[2],
                recipients=[address],
                body=body,
            ),
            max_age,
        )
        ids.extend(r.id for r in rows)
    return ids
