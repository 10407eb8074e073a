"""Campaign reports (issue 15, point 3) against hand-computed figures: delivery by state,
bounces by reason, complaints, links and mailbox providers with people and machines apart,
CSV exports, and another company's campaign not found."""

from __future__ import annotations

import csv
import io

import pytest

from control.mailbox_providers import mailbox_provider
from tests.support.fixtures_control import MakeControl

PROVIDER_CASES = [
    ("gmail-smtp-in.l.google.com:25", "acme.test", "gmail"),
    ("alt1.aspmx.l.google.com", "workspace.example", "gmail"),
    ("acme-com.mail.protection.outlook.com:25", "acme.com", "microsoft"),
    ("mta7.am0.yahoodns.net:25", "yahoo.co.uk", "yahoo"),
    ("mx01.mail.icloud.com:25", "me.com", "apple"),
    ("mx.example.net:25", "gmail.com", "other"),  # the MX decides, not the address
    ("[2001:db8::1]:25", "acme.test", "other"),
    ("notgoogle.com:25", "acme.test", "other"),
    (None, "gmail.com", "gmail"),
    (None, "hotmail.fr", "microsoft"),
    (None, "yahoo.co.jp", "yahoo"),
    (None, "icloud.com", "apple"),
    (None, "example.org", "other"),
]


@pytest.mark.parametrize(("mx", "domain", "provider"), PROVIDER_CASES)
def test_mailbox_provider_is_read_from_the_mx_else_the_domain(
    mx: str | None, domain: str, provider: str
) -> None:
    assert mailbox_provider(mx, domain) == provider


async def test_campaign_report_matches_hand_computed_figures(make_control: MakeControl) -> None:
    control = await make_control()
    c, db = control.client, control.pool
    company = await control.company()
    admin = await control.user(company, "admin")
    analyst = await control.user(company, "analyst")
    ids = await control.fixtures(admin)
    campaign = ids["campaign"]
    message = await db.fetchval(
        "INSERT INTO messages (company_id, mail_from, from_domain, body, size, campaign_id)"
        " VALUES ($1, 'n@x.test', 'x.test', '', 0, $2) RETURNING id",
        company.id,
        campaign,
    )
    # five recipients: two at gmail (delivered), one at a Workspace domain (delivered), one
    # Outlook (bounced), one deferred at example.org
    rows = [
        ("a@gmail.com", "gmail.com", "delivered", "gmail-smtp-in.l.google.com:25"),
        ("b@gmail.com", "gmail.com", "delivered", "gmail-smtp-in.l.google.com:25"),
        ("c@acme.test", "acme.test", "delivered", "aspmx.l.google.com:25"),
        ("d@outlook.com", "outlook.com", "bounced", "outlook-com.olc.protection.outlook.com:25"),
        ("e@example.org", "example.org", "deferred", None),
    ]
    rid = {}
    for address, domain, state, mx in rows:
        rid[address] = await db.fetchval(
            "INSERT INTO recipients (message_id, company_id, recipient, domain, state, last_mx,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6, now()) RETURNING id",
            message,
            company.id,
            address,
            domain,
            state,
            mx,
        )
    events = [
        ("a@gmail.com", "open", False, None),
        ("a@gmail.com", "open", False, None),
        ("a@gmail.com", "click", False, "https://shop.test/x"),
        ("b@gmail.com", "open", True, None),  # image proxy: not a person
        ("b@gmail.com", "click", True, "https://shop.test/x"),  # link scanner
        ("c@acme.test", "open", False, None),
        ("c@acme.test", "click", False, "https://shop.test/y"),
        ("c@acme.test", "click", False, "https://shop.test/x"),
    ]
    for address, kind, machine, url in events:
        await db.execute(
            "INSERT INTO tracking_events (kind, at, company_id, recipient_id, campaign_id, url,"
            " machine) VALUES ($1, now(), $2, $3, $4, $5, $6)",
            kind,
            company.id,
            rid[address],
            campaign,
            url,
            machine,
        )
    for address, kind, reason, hard in (
        ("d@outlook.com", "bounced", "userunknown", True),
        ("a@gmail.com", "complained", "feedback", None),
        ("e@example.org", "deferred", "mailboxfull", False),
    ):
        await db.execute(
            "INSERT INTO bounce_events (company_id, recipient_id, campaign_id, address, domain,"
            " kind, reason, hard, source) VALUES ($1, $2, $3, $4, 'x', $5, $6, $7, 'dsn')",
            company.id,
            rid[address],
            campaign,
            address,
            kind,
            reason,
            hard,
        )
    r = await c.get(f"/api/email-campaigns/{campaign}/report/", headers=analyst.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["delivery"] == {"delivered": 3, "bounced": 1, "deferred": 1}
    assert body["bounces"] == [
        {"hard": True, "reason": "userunknown", "events": 1, "recipients": 1}
    ]
    assert body["feedback"] == {"complaints": 1, "mailto_unsubscribes": 0, "deferral_events": 1}
    assert body["engagement"]["open"]["human_unique_recipients"] == 2
    assert body["engagement"]["open"]["machine_total"] == 1
    assert body["links"][0] == {
        "url": "https://shop.test/x",
        "link_index": None,
        "total": 3,
        "unique_recipients": 3,
        "human_total": 2,
        "human_unique_recipients": 2,
        "machine_total": 1,
    }
    assert body["links"][1]["url"] == "https://shop.test/y"
    gmail, microsoft, other = body["providers"]
    assert gmail == {
        "provider": "gmail",
        "recipients": 3,
        "delivered": 3,
        "bounced": 0,
        "deferred": 0,
        "human_opened": 2,
        "human_clicked": 2,
        "human_open_rate": 0.6667,
        "human_click_rate": 0.6667,
    }
    assert (microsoft["provider"], microsoft["bounced"], microsoft["human_open_rate"]) == (
        "microsoft",
        1,
        None,
    )
    assert (other["provider"], other["deferred"]) == ("other", 1)
    assert [d["domain"] for d in body["domains"]] == [
        "gmail.com",
        "acme.test",
        "example.org",
        "outlook.com",
    ]
    r = await c.get(f"/api/email-campaigns/{campaign}/report/links.csv", headers=analyst.auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [(t["url"], t["human_unique_recipients"]) for t in table] == [
        ("https://shop.test/x", "2"),
        ("https://shop.test/y", "1"),
    ]
    r = await c.get(f"/api/email-campaigns/{campaign}/report/providers.csv", headers=admin.auth)
    assert [t["provider"] for t in csv.DictReader(io.StringIO(r.text))] == [
        "gmail",
        "microsoft",
        "other",
    ]
    stranger = await control.user(await control.company(), "admin")
    for path in ("report/", "report/bounces.csv"):
        r = await c.get(f"/api/email-campaigns/{campaign}/{path}", headers=stranger.auth)
        assert r.status_code == 404
