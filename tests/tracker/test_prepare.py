"""Message preparation: what gets rewritten and what is left alone, per-message / per-tenant /
per-credential tracking decisions on a real database, and forged tracking headers."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime

import asyncpg
import pytest

from mta import tenants
from mta.compose import ComposeError, MessageSpec, compose
from mta.credentials import Credential
from mta.queue import ClaimedRecipient, StoredMessage, Submission
from tracker.prepare import (
    MARKER,
    DeliveryPreparer,
    Links,
    RecipientLinks,
    SubmissionPreparer,
    Tracking,
    add_pixel,
    rewrite_links,
    seal_tracking,
)
from tracker.tokens import TokenCodec, TokenKind

CODEC = TokenCodec(b"prepare-secret")
LINKS = Links("https://t.example.com")


def _tracked(index: int, url: str) -> str:
    return f"https://t.example.com/c/{index}"


def test_only_http_links_without_the_notrack_mark_are_rewritten() -> None:
    html = (
        '<a href="https://a.test/?x=1&amp;y=2">A</a>'
        "<A HREF='http://b.test/'>B</A>"
        "<a class=x href=https://c.test/c>C</a>"
        '<a href="mailto:x@y.test">m</a><a href="tel:+1">t</a><a href="#top">#</a>'
        '<a href="/relative">r</a><a name="anchor">n</a>'
        '<a data-sendmill-notrack href="https://d.test/">D</a>'
        '<a href="https://t.example.com/u/abc">unsubscribe</a>'
        '<a data-href="https://e.test/data" href="https://e.test/real">E</a>'
    )
    seen: list[tuple[int, str]] = []
    out = rewrite_links(html, lambda i, u: seen.append((i, u)) or _tracked(i, u), LINKS.base_url)
    assert seen == [
        (0, "https://a.test/?x=1&y=2"),
        (1, "http://b.test/"),
        (2, "https://c.test/c"),
        (3, "https://e.test/real"),  # the href, not a data-href before it
    ]
    assert re.findall(r'href="([^"]+)"', out, re.I)[:3] == [
        "https://t.example.com/c/0",
        "https://t.example.com/c/1",
        "https://t.example.com/c/2",
    ]
    for kept in ("mailto:x@y.test", "tel:+1", "#top", "/relative", "https://d.test/", "/u/abc"):
        assert kept in out
    assert "data-sendmill-notrack" not in out


def test_pixel_goes_before_the_last_body_end_or_at_the_end() -> None:
    assert add_pixel("<html><body>x</BODY></html>", "P").index("<img") < 20
    assert add_pixel("<p>x</p>", "P").endswith('overflow:hidden">')


def _message(html: str, text: str | None = "Hi {{unsubscribe_url}}") -> bytes:
    spec = MessageSpec.from_json(
        {"from": "news@acme.test", "to": "x@dest.test", "subject": "S", "html": html, "text": text}
    )
    return compose(spec, "sendmill.test")


def _claim(recipient_id: int = 41) -> ClaimedRecipient:
    now = datetime.now(UTC)
    return ClaimedRecipient(recipient_id, 1, 5, "x@dest.test", "dest.test", 0, 0, now, now)


def _stored(body: bytes, company_id: int = 5) -> StoredMessage:
    return StoredMessage(1, company_id, "news@acme.test", "acme.test", "<m@x>", body, False, False)


def test_aggregate_only_links_carry_no_recipient_but_unsubscribe_does() -> None:
    tracking = Tracking(company_id=5, opens=True, clicks=True, marketing=True, per_recipient=False)
    body = seal_tracking(CODEC, tracking) + _message('<a href="https://a.test/">a</a>')
    out = DeliveryPreparer(CODEC, LINKS).prepare(_stored(body), _claim())
    msg = email.message_from_bytes(out, policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()
    click = re.search(r"/c/([\w-]+)", html).group(1)
    pixel = re.search(r"/o/([\w-]+)", html).group(1)
    assert CODEC.verify(click, TokenKind.CLICK).recipient_id == 0
    assert CODEC.verify(pixel, TokenKind.OPEN).recipient_id == 0
    unsubscribe = re.search(r"/u/([\w-]+)", msg["List-Unsubscribe"]).group(1)
    assert CODEC.verify(unsubscribe, TokenKind.UNSUBSCRIBE).recipient_id == 41


def test_a_forged_or_foreign_tracking_header_is_removed_and_nothing_is_tracked() -> None:
    original = _message('<a href="https://a.test/">a</a>')
    forged = f"{MARKER}: e30.AAAA\r\n".encode() + original
    other_company = seal_tracking(CODEC, Tracking(company_id=6, clicks=True)) + original
    preparer = DeliveryPreparer(CODEC, LINKS)
    for body in (forged, other_company):
        message = _stored(body)
        assert preparer.needs_preparation(message)
        assert preparer.prepare(message, _claim()) == original


def test_recipient_links_fill_placeholders_in_text() -> None:
    links = RecipientLinks(CODEC, LINKS, Tracking(company_id=5), 41, 1_764_000_000)
    text = links.placeholders("a {{unsubscribe_url}} b {{preferences_url}} c {{view_url}}")
    assert "/u/" in text and "/p/" in text and "/v/" in text and "{{" not in text


async def _account(pool: asyncpg.Pool, settings: dict) -> Credential:
    company_id = await tenants.ensure_company(pool, "acme")
    await pool.execute("UPDATE companies SET settings = $1 WHERE id = $2", settings, company_id)
    return Credential(id=17, company_id=company_id, kind="api")


def _submission(company_id: int, category: str = "transactional") -> Submission:
    return Submission(
        company_id,
        17,
        "a@acme.test",
        "acme.test",
        ["x@dest.test"],
        b"",
        None,
        category=category,
        campaign_id=3,
        list_id=4,
    )


@pytest.mark.parametrize(
    ("settings", "category", "option", "expected"),
    [
        ({}, "transactional", None, (False, False)),  # transactional: untracked by default
        ({}, "marketing", None, (True, True)),  # marketing: tracked by default
        ({}, "marketing", False, (False, False)),  # off per message
        ({}, "transactional", {"opens": True}, (True, False)),
        ({"tracking": {"enabled": False}}, "marketing", True, (False, False)),  # off per tenant
        ({"tracking": {"clicks": False}}, "marketing", None, (True, False)),  # tenant default
        (
            {"tracking": {"credentials": {"17": {"opens": True}}}},
            "transactional",
            None,
            (True, False),
        ),
        (
            {"tracking": {"credentials": {"99": {"opens": True}}}},
            "transactional",
            None,
            (False, False),
        ),
    ],
)
async def test_tracking_decisions(pool, settings, category, option, expected) -> None:
    credential = await _account(pool, settings)
    preparer = SubmissionPreparer(pool, CODEC)
    tracking = await preparer.decide(
        credential, option, _submission(credential.company_id, category)
    )
    assert (tracking.opens, tracking.clicks) == expected
    assert tracking.marketing == (category == "marketing")
    assert (tracking.campaign_id, tracking.list_id) == (3, 4)


async def test_untracked_mail_is_stored_as_submitted_and_bad_options_are_named(pool) -> None:
    credential = await _account(pool, {})
    preparer = SubmissionPreparer(pool, CODEC)
    submission = _submission(credential.company_id)
    assert await preparer(credential, None, submission) is submission
    for bad, field in (
        ("yes", "tracking"),
        ({"opnes": True}, "tracking.opnes"),
        ({"opens": 1}, "tracking.opens"),
        ({"utm": {"x": "y"}}, "tracking.utm"),
    ):
        with pytest.raises(ComposeError) as error:
            await preparer(credential, bad, submission)
        assert error.value.field == field


def test_mailto_local_part_fits_64_octets_for_large_ids() -> None:
    tracking = Tracking(company_id=70_000, marketing=True, campaign_id=10**9, list_id=2**20)
    links = Links("https://t.example.com", mailto=("unsubscribe", "bounces.example.com"))
    recipient = RecipientLinks(CODEC, links, tracking, 2**28 - 1, 1_764_000_000)
    mailto = recipient.list_unsubscribe().split(", ")[1]
    local = mailto.removeprefix("<mailto:").partition("@")[0]
    assert len(local) <= 64 and local == local.lower()
    decoded = CODEC.verify_hex(local.partition("+")[2].upper(), TokenKind.UNSUBSCRIBE)
    assert (decoded.recipient_id, decoded.company_id, decoded.list_id) == (2**28 - 1, 70_000, 2**20)
