"""Ids a request names — a list, a campaign — checked against the caller's company, so no
tenant can point its mail, its workflows or its analytics at another tenant's records
(issue 12.13). Another company's id answers exactly like an id that does not exist.

`missing_ids` is the check; `SubmissionReferences` applies it to the HTTP and SMTP submission
options (`campaign_id`, `list_id`) before the tracker's hook sees them: the daemon chains them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import asyncpg

from mta.compose import ComposeError
from mta.credentials import Credential
from mta.queries import Queries
from mta.queue import Submission
from mta.submission_options import SubmissionHook

SQL = Queries("control")
_QUERY = {"list": SQL["company-lists"], "campaign": SQL["company-campaigns"]}


async def missing_ids(
    db: asyncpg.Pool | asyncpg.Connection,
    company_id: int,
    kind: Literal["list", "campaign"],
    ids: Iterable[int],
) -> list[int]:
    """The ids of `ids` that are not live records of `kind` in company `company_id`."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = {r["id"] for r in await db.fetch(_QUERY[kind], company_id, wanted)}
    return [i for i in wanted if i not in found]


class SubmissionReferences:
    """The submission hook that refuses another company's campaign or list id (422 naming the
    option), then hands over to the next hook (tracking)."""

    def __init__(self, db: asyncpg.Pool, then: SubmissionHook | None) -> None:
        self._db = db
        self._then = then

    async def __call__(
        self, credential: Credential, options: Any, submission: Submission
    ) -> Submission:
        for kind, value in (("campaign", submission.campaign_id), ("list", submission.list_id)):
            if value is not None and await missing_ids(
                self._db, credential.company_id, kind, [value]
            ):
                raise ComposeError(f"{kind}_id", f"no {kind} {value} in this account")
        if self._then is not None:
            return await self._then(credential, options, submission)
        if options is not None:
            raise ComposeError("tracking", "tracking is not available on this server")
        return submission
