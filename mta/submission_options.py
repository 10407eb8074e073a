"""What a submission says about itself besides the message: its category (transactional or
marketing), the campaign and list it belongs to, and the tracking it asks for.

HTTP clients send these as JSON fields or, for raw messages, as query parameters; SMTP clients,
which have no other channel, as `X-Sendmill-*` header fields that are removed before the message
is queued (the way ESPs read `X-PM-Track-Opens` or `X-Mailgun-Track`):

    X-Sendmill-Category: marketing
    X-Sendmill-Campaign-Id: 7
    X-Sendmill-List-Id: 3
    X-Sendmill-Tracking: opens, clicks        (or "none")

Both front ends apply them through `apply_options`, so they mean the same everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from mta import queue
from mta.compose import ComposeError
from mta.credentials import Credential

CATEGORIES = ("transactional", "marketing")
MAX_BIGINT = 2**63 - 1
OPTION_NAMES = ("category", "campaign_id", "list_id", "tracking")
HEADER_PREFIX = b"x-sendmill-"

# The tracking hook the daemon passes in (the tracker's): decides tracking for a submission.
SubmissionHook = Callable[[Credential, Any, queue.Submission], Awaitable[queue.Submission]]


def options_from_text(values: Mapping[str, str]) -> dict[str, Any]:
    """Options given as text (query parameters, header fields), checked and typed like JSON
    options. Raises ComposeError naming the bad option."""
    options: dict[str, Any] = {}
    if "category" in values:
        options["category"] = values["category"].strip()
    for name in ("campaign_id", "list_id"):
        if name in values:
            value = values[name].strip()
            if not (value.isdigit() and len(value) < 20):
                raise ComposeError(name, "must be a positive integer")
            options[name] = int(value)
    if "tracking" in values:
        wanted = {w.strip().lower() for w in values["tracking"].split(",") if w.strip()}
        if not wanted <= {"opens", "clicks", "none"}:
            raise ComposeError("tracking", "must be 'opens', 'clicks', 'opens,clicks' or 'none'")
        options["tracking"] = {"opens": "opens" in wanted, "clicks": "clicks" in wanted}
    return options


def pop_option_headers(body: bytes) -> tuple[dict[str, str], bytes]:
    """Remove the `X-Sendmill-*` option fields (with their continuation lines) from a CRLF
    message's header section; returns their values by option name and the message without
    them. Unknown `X-Sendmill-` fields are left alone."""
    head, separator, rest = body.partition(b"\r\n\r\n")
    if HEADER_PREFIX not in head.lower():
        return {}, body
    values: dict[str, str] = {}
    kept: list[bytes] = []
    current: str | None = None
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                values[current] += " " + line.strip().decode("utf-8", "replace")
                continue
            kept.append(line)
            continue
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        option = lname[len(HEADER_PREFIX) :].decode("ascii", "replace").replace("-", "_")
        if lname.startswith(HEADER_PREFIX) and option in OPTION_NAMES:
            current = option
            values[option] = value.strip().decode("utf-8", "replace")
        else:
            current = None
            kept.append(line)
    return values, b"\r\n".join(kept) + separator + rest


async def apply_options(
    credential: Credential,
    submission: queue.Submission,
    options: Mapping[str, Any],
    hook: SubmissionHook | None,
) -> queue.Submission:
    """Category, campaign and list on the submission; tracking decided by the hook, when the
    server has one (asking for tracking where there is none is an error, not a silent no)."""
    submission = replace(
        submission,
        category=_category(options.get("category")),
        campaign_id=_optional_id(options.get("campaign_id"), "campaign_id"),
        list_id=_optional_id(options.get("list_id"), "list_id"),
    )
    if hook is not None:
        return await hook(credential, options.get("tracking"), submission)
    if options.get("tracking") is not None:
        raise ComposeError("tracking", "tracking is not available on this server")
    return submission


def _optional_id(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_BIGINT:
        raise ComposeError(where, "must be a positive integer")
    return value


def _category(value: Any) -> str:
    if value is None:
        return CATEGORIES[0]
    if value not in CATEGORIES:
        raise ComposeError("category", "must be one of " + ", ".join(repr(c) for c in CATEGORIES))
    return value
