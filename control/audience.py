"""Who a campaign reaches (issue 10, point 1): the target list's subscribed members minus the
exclusions, computed set-wise in PostgreSQL by the SQL function `campaign_audience`
(control/schema/0010), one definition for the preview, the approval threshold and the enqueue.

Consent: a company that requires confirmed opt-in sets `{"consent": {"require_confirmed_opt_in":
true}}` in its settings (PUT /api/settings/); its campaigns then leave out every contact whose
`opt_in_state` is not `confirmed` (counted as `no_consent`). Default: not required.

Segments: `segment_condition` is where a campaign's `segment_criteria`, compiled to an SQL
condition over the audience row `a` (contact id `a.contact_id`), is ANDed into every audience
query; the segment compiler is another engineer's work, and until it lands criteria are not
applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from mta.queries import Queries

SQL = Queries("control")
SEGMENT_MARKER = "TRUE /* segment */"
SAMPLE_SIZE = 10
# The exclusions in the order campaign_audience applies them (first match wins).
EXCLUSIONS = (
    "erased",
    "suppressed",
    "unsubscribed",
    "no_consent",
    "suppression_list",
    "blocklisted",
)


@dataclass(frozen=True, slots=True)
class AudienceRules:
    """What decides a campaign's audience (frozen with a campaign version when it is sent)."""

    company_id: int
    list_id: int
    suppression_list_id: int | None = None
    require_consent: bool = False
    segment_criteria: dict[str, Any] | None = None

    @property
    def args(self) -> tuple[int, int, int | None, bool]:
        return (self.company_id, self.list_id, self.suppression_list_id, self.require_consent)


@dataclass(frozen=True, slots=True)
class Audience:
    count: int
    members: int  # subscribed members of the list considered (after the segment)
    removed: dict[str, int]  # by exclusion, every one listed
    sample: list[dict[str, Any]]


def requires_consent(settings: dict[str, Any]) -> bool:
    """The company setting `consent.require_confirmed_opt_in` (default false)."""
    consent = settings.get("consent")
    return isinstance(consent, dict) and consent.get("require_confirmed_opt_in") is True


def segment_condition(criteria: dict[str, Any] | None) -> str | None:
    """The SQL condition of a segment over the audience row `a`, or None for everyone.
    The segment compiler plugs in here (not built yet: criteria are not applied)."""
    return None


def with_segment(query: str, criteria: dict[str, Any] | None) -> str:
    """`query` with the segment's condition in place of its segment marker."""
    condition = segment_condition(criteria)
    if condition is None:
        return query
    return query.replace(SEGMENT_MARKER, f"({condition})")


async def audience(
    db: asyncpg.Pool | asyncpg.Connection, rules: AudienceRules, sample: int = SAMPLE_SIZE
) -> Audience:
    """The count, a sample and how many each exclusion removed, in two set-wise queries."""
    rows = await db.fetch(
        with_segment(SQL["audience-summary"], rules.segment_criteria), *rules.args
    )
    by = {r["excluded_by"]: r["n"] for r in rows}
    sampled = await db.fetch(
        with_segment(SQL["audience-sample"], rules.segment_criteria), *rules.args, sample
    )
    return Audience(
        count=by.get(None, 0),
        members=sum(by.values()),
        removed={name: by.get(name, 0) for name in EXCLUSIONS},
        sample=[dict(r) for r in sampled],
    )


async def audience_count(db: asyncpg.Pool | asyncpg.Connection, rules: AudienceRules) -> int:
    return (await audience(db, rules, sample=0)).count
