"""An erased address is never mailed again, by any kind of mail, though only its hash is kept."""

from __future__ import annotations

import asyncpg

from mta import erasure, queue, tenants
from mta.queue import Submission


def _submission(company_id: int, recipients: list[str], category: str) -> Submission:
    return Submission(
        company_id=company_id,
        credential_id=None,
        mail_from="app@example.test",
        from_domain="example.test",
        recipients=recipients,
        body=b"From: app@example.test\r\nSubject: hi\r\n\r\nhello\r\n",
        category=category,
    )


async def test_an_erased_address_is_suppressed_for_every_kind_of_mail(pool: asyncpg.Pool) -> None:
    company = await tenants.ensure_company(pool, "acme")
    other = await tenants.ensure_company(pool, "other")
    queued = await queue.enqueue(pool, _submission(company, ["Jane@X.test"], "transactional"), 60)

    await erasure.suppress_erased_address(pool, company, "jane@x.test")
    await erasure.suppress_erased_address(pool, company, "jane@x.test")  # idempotent

    for category in ("transactional", "marketing"):
        rows = await queue.enqueue(
            pool, _submission(company, ["JANE@x.test", "joe@x.test"], category), 60
        )
        assert [r.state for r in rows] == ["suppressed", "queued"]
    elsewhere = await queue.enqueue(pool, _submission(other, ["jane@x.test"], "transactional"), 60)
    assert elsewhere[0].state == "queued"  # another company's choice, not this person's erasure
    # Mail queued before the erasure is stopped at delivery.
    assert await queue.blocked_recipients(pool, [queued[0].id]) == {queued[0].id: "erased"}
    assert await pool.fetchval("SELECT count(*) FROM suppressions") == 0  # nothing in clear
    stored = await pool.fetchval("SELECT address_hash FROM suppression_hashes")
    assert b"jane" not in bytes(stored)
