"""Segments (issue 15): criteria checked against a Python reference filter over random contacts,
lists, tracking and bounce events (hypothesis), validation that names the bad part, SQL
injection attempts that stay harmless, the preview endpoint's permissions and tenancy, and
validation of segment_criteria on list and campaign save."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control import engagement, segments
from tests.support.fixtures_control import MakeControl, list_body

NOW = datetime.now(UTC).replace(microsecond=0)
_serial = itertools.count(1)

# --- a small world and its reference filter ------------------------------------------------

TEXTS = ["", "a", "ab", "Ab", "b%", "_x", "o'k", "ü", "pro", "pro "]
DOMAINS = ["gmail.com", "Example.org", "mail.test"]
ATTRIBUTE_KEYS = ["plan", "age", "vip", "signup", "odd key'; --"]
URLS = ["https://shop.example/a", "https://shop.example/b?x=1"]
REASONS = ["userunknown", "mailboxfull", "blocked"]
DATES = [NOW - timedelta(days=d) for d in (0.5, 3, 20, 45, 200, 800)]


@dataclass
class Contact:
    id: int = 0
    email: str | None = ""
    first_name: str | None = None
    opt_in_state: str = "none"
    created_at: datetime = NOW
    confirmed_at: datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False


@dataclass
class Event:
    contact: int  # index into the contacts
    kind: str
    campaign: int
    machine: bool
    at: datetime
    url: str | None
    upper: bool  # the queue kept the address in another case


@dataclass
class Bounce:
    contact: int
    kind: str  # bounced | complained
    hard: bool
    reason: str
    at: datetime


@dataclass
class World:
    contacts: list[Contact]
    members: list[tuple[int, int, str]]  # (contact index, list 0/1, state)
    unsubscribed: list[tuple[int, int]]  # (contact index, list 0/1/-1 for all)
    events: list[Event]
    bounces: list[Bounce]
    lists: list[int] = field(default_factory=list)  # real ids, filled on insert
    campaigns: list[int] = field(default_factory=lambda: [1, 2])


attribute_values = st.one_of(
    st.sampled_from(["free", "pro", "Pro", "pro "]),
    st.integers(-5, 100),
    st.sampled_from([1.5, 2.0, 99.99]),
    st.booleans(),
    st.none(),
    st.sampled_from(
        [d.isoformat().replace("+00:00", "Z") for d in DATES] + ["not a date", "2025-13-40"]
    ),
)
contacts_st = st.builds(
    Contact,
    first_name=st.one_of(st.none(), st.sampled_from(TEXTS)),
    opt_in_state=st.sampled_from(["none", "pending", "confirmed"]),
    created_at=st.sampled_from(DATES),
    confirmed_at=st.one_of(st.none(), st.sampled_from(DATES)),
    attributes=st.dictionaries(st.sampled_from(ATTRIBUTE_KEYS), attribute_values, max_size=4),
    deleted=st.sampled_from([False, False, False, True]),
)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    contacts = draw(st.lists(contacts_st, min_size=1, max_size=10))
    n = len(contacts)
    index = st.integers(0, n - 1)
    for i, c in enumerate(contacts):
        c.email = f"p{i}@{draw(st.sampled_from(DOMAINS)).lower()}"
    members = draw(
        st.lists(
            st.tuples(index, st.integers(0, 1), st.sampled_from(["subscribed", "unsubscribed"])),
            max_size=12,
            unique_by=lambda m: (m[0], m[1]),
        )
    )
    unsubscribed = draw(
        st.lists(st.tuples(index, st.integers(-1, 1)), max_size=4, unique_by=lambda u: u)
    )
    events = draw(
        st.lists(
            st.builds(
                Event,
                contact=index,
                kind=st.sampled_from(["open", "click"]),
                campaign=st.sampled_from([1, 2]),
                machine=st.booleans(),
                at=st.sampled_from(DATES),
                url=st.sampled_from(URLS),
                upper=st.booleans(),
            ),
            max_size=15,
        )
    )
    bounces = draw(
        st.lists(
            st.builds(
                Bounce,
                contact=index,
                kind=st.sampled_from(["bounced", "bounced", "complained"]),
                hard=st.booleans(),
                reason=st.sampled_from(REASONS),
                at=st.sampled_from(DATES),
            ),
            max_size=6,
        )
    )
    return World(contacts, members, unsubscribed, events, bounces)


def subscribed(world: World, i: int, lst: int) -> bool:
    rows = [m for m in world.members if m[0] == i and m[1] == lst]
    if not rows or rows[0][2] != "subscribed":
        return False
    return not any(u[0] == i and u[1] in (-1, lst) for u in world.unsubscribed)


def reference(world: World, node: dict[str, Any], i: int) -> bool:
    """The meaning of criteria, as README documents it, for contact `i`."""
    c = world.contacts[i]
    if not node:
        return True
    if "all" in node:
        return all(reference(world, n, i) for n in node["all"])
    if "any" in node:
        return any(reference(world, n, i) for n in node["any"])
    if "not" in node:
        return not reference(world, node["not"], i)
    if "field" in node:
        name = node["field"]
        value = {
            "email": c.email,
            "email_domain": (c.email or "").split("@")[1] if c.email else None,
            "first_name": c.first_name,
            "opt_in_state": c.opt_in_state,
            "created_at": c.created_at,
            "confirmed_at": c.confirmed_at,
        }[name]
        kind = segments.FIELDS[name][1]
        wanted = node.get("value")
        if name in ("email", "email_domain") and wanted is not None:
            wanted = [w.lower() for w in wanted] if isinstance(wanted, list) else wanted.lower()
        return compare(value, kind, node["op"], wanted)
    if "attribute" in node:
        raw = c.attributes.get(node["attribute"])
        if node["op"] in ("exists", "not_exists"):
            return (raw is not None) == (node["op"] == "exists")
        kind = segments.attribute_type(node)
        return compare(typed(raw, kind), kind, node["op"], node.get("value"))
    if "list" in node:
        lst = world.lists.index(node["list"])
        member = any(m[0] == i and m[1] == lst for m in world.members)
        status = node.get("status", "subscribed")
        if status == "any":
            return member
        on = subscribed(world, i, lst)
        return on if status == "subscribed" else member and not on
    if "consent" in node:
        if node["consent"] == "unsubscribed":
            return any(u[0] == i and u[1] == -1 for u in world.unsubscribed)
        return c.opt_in_state == node["consent"]
    if "engagement" in node:
        return engaged(world, node, i)
    if "bounced" in node:
        mine = [b for b in world.bounces if b.contact == i and b.kind == "bounced"]
        if not mine:
            return False
        last = max(enumerate(mine), key=lambda p: (p[1].at, p[0]))[1]
        ok = node["bounced"] == "any" or last.hard == (node["bounced"] == "hard")
        reason = node.get("reason")
        if reason is not None:
            ok = ok and last.reason in (reason if isinstance(reason, list) else [reason])
        if "within_days" in node:
            ok = ok and last.at >= NOW - timedelta(days=node["within_days"])
        return ok
    # complained
    since = NOW - timedelta(days=node.get("within_days", 100_000))
    hit = any(b.contact == i and b.kind == "complained" and b.at >= since for b in world.bounces)
    return hit if node["complained"] else not hit


def engaged(world: World, node: dict[str, Any], i: int) -> bool:
    what = node["engagement"]
    kind = "open" if what.endswith("opened") else "click"
    since = NOW - timedelta(days=node.get("within_days", 100_000))
    hit = any(
        e.contact == i
        and e.kind == kind
        and (node.get("raw") or not e.machine)
        and node.get("campaign", e.campaign) == e.campaign
        and ("link" not in node or e.url == node["link"])
        and e.at >= since
        for e in world.events
    )
    return not hit if what.startswith("never_") else hit


def typed(raw: Any, kind: str) -> Any:
    if kind == segments.STRING:
        return raw if isinstance(raw, str) else None
    if kind == segments.NUMBER:
        return raw if isinstance(raw, int | float) and not isinstance(raw, bool) else None
    if kind == segments.BOOLEAN:
        return raw if isinstance(raw, bool) else None
    try:
        return segments.parse_date(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def compare(value: Any, kind: str, op: str, wanted: Any) -> bool:
    if op in ("exists", "not_exists"):
        present = value is not None and (kind != segments.STRING or value != "")
        return present == (op == "exists")
    negate = op in segments.NEGATIONS
    op = segments.NEGATIONS.get(op, op)
    if kind == segments.DATE and isinstance(wanted, str):
        wanted = segments.parse_date(wanted)
    result = False
    if value is not None:
        if op == "equals":
            result = value == wanted
        elif op == "in":
            result = value in wanted
        elif op == "contains":
            result = wanted in value
        elif op == "starts_with":
            result = value.startswith(wanted)
        elif op == "gt":
            result = value > wanted
        elif op == "gte":
            result = value >= wanted
        elif op == "lt":
            result = value < wanted
        elif op == "lte":
            result = value <= wanted
        elif op == "within_last_days":
            result = NOW - timedelta(days=wanted) <= value <= NOW
        elif op == "before_last_days":
            result = value < NOW - timedelta(days=wanted)
    return not result if negate else result


# --- random criteria ------------------------------------------------------------------------

DAY_COUNTS = st.sampled_from([1, 10, 30, 100, 365])
string_values = st.sampled_from([*TEXTS[1:], "free", "P0@GMAIL.COM", "gmail.com", "confirmed"])
date_values = st.sampled_from(
    [d.isoformat().replace("+00:00", "Z") for d in DATES] + ["2026-01-01"]
)


@st.composite
def comparisons(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    ops = sorted(segments.OPERATORS[kind] | segments.PRESENCE)
    op = draw(st.sampled_from(ops))
    if op in segments.PRESENCE:
        return {"op": op}
    if op in ("within_last_days", "before_last_days"):
        return {"op": op, "value": draw(DAY_COUNTS)}
    scalar = {
        segments.STRING: string_values,
        segments.NUMBER: st.one_of(st.integers(-5, 100), st.sampled_from([1.5, 99.99])),
        segments.BOOLEAN: st.booleans(),
        segments.DATE: date_values,
    }[kind]
    if op in ("in", "not_in"):
        return {"op": op, "value": draw(st.lists(scalar, min_size=1, max_size=3))}
    return {"op": op, "value": draw(scalar)}


@st.composite
def leaves(draw: st.DrawFn, lists: list[int]) -> dict[str, Any]:
    choice = draw(st.sampled_from(
        ["field", "attribute", "list", "consent", "engagement", "bounced", "complained"]
    ))  # fmt: skip
    if choice == "field":
        name = draw(st.sampled_from(
            ["email", "email_domain", "first_name", "opt_in_state", "created_at", "confirmed_at"]
        ))  # fmt: skip
        return {"field": name, **draw(comparisons(segments.FIELDS[name][1]))}
    if choice == "attribute":
        kind = draw(st.sampled_from([segments.STRING, segments.NUMBER, segments.DATE,
                                     segments.BOOLEAN]))  # fmt: skip
        node = {"attribute": draw(st.sampled_from(ATTRIBUTE_KEYS)), **draw(comparisons(kind))}
        if kind == segments.DATE or draw(st.booleans()):
            node["type"] = kind
        return node
    if choice == "list":
        node = {"list": draw(st.sampled_from(lists))}
        if draw(st.booleans()):
            node["status"] = draw(st.sampled_from(segments.LIST_STATUSES))
        return node
    if choice == "consent":
        return {"consent": draw(st.sampled_from(segments.CONSENT_STATES))}
    if choice == "engagement":
        what = draw(st.sampled_from(segments.ENGAGEMENTS))
        node: dict[str, Any] = {"engagement": what}
        if draw(st.booleans()):
            node["campaign"] = draw(st.sampled_from([1, 2]))
        if draw(st.booleans()):
            node["within_days"] = draw(DAY_COUNTS)
        if draw(st.booleans()):
            node["raw"] = draw(st.booleans())
        if what.endswith("clicked") and draw(st.booleans()):
            node["link"] = draw(st.sampled_from(URLS))
        return node
    if choice == "bounced":
        node = {"bounced": draw(st.sampled_from(segments.BOUNCE_KINDS))}
        if draw(st.booleans()):
            some = st.lists(st.sampled_from(REASONS), min_size=1)
            node["reason"] = draw(st.one_of(st.sampled_from(REASONS), some))
        if draw(st.booleans()):
            node["within_days"] = draw(DAY_COUNTS)
        return node
    node = {"complained": draw(st.booleans())}
    if draw(st.booleans()):
        node["within_days"] = draw(DAY_COUNTS)
    return node


def criteria_for(lists: list[int]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        leaves(lists),
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda x: {"not": x}, inner),
        ),
        max_leaves=6,
    )


# --- putting a world in the database --------------------------------------------------------


async def insert_world(db: asyncpg.Pool, world: World) -> int:
    n = next(_serial)
    company = await db.fetchval(
        "INSERT INTO companies (name) VALUES ($1) RETURNING id", f"seg{n}-{NOW.timestamp()}"
    )
    world.lists = [
        await db.fetchval(
            "INSERT INTO email_lists (company_id, list_name, list_code, list_type, source_type)"
            " VALUES ($1, $2, $2, 'static', 'manual') RETURNING id",
            company,
            f"L{k}",
        )
        for k in range(2)
    ]
    for c in world.contacts:
        c.id = await db.fetchval(
            "INSERT INTO contacts (company_id, email, first_name, attributes, opt_in_state,"
            " created_at, confirmed_at, is_deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " RETURNING id",
            company,
            c.email,
            c.first_name,
            c.attributes,
            c.opt_in_state,
            c.created_at,
            c.confirmed_at,
            c.deleted,
        )
    for i, lst, state in world.members:
        await db.execute(
            "INSERT INTO list_members (company_id, list_id, contact_id, state)"
            " VALUES ($1, $2, $3, $4)",
            company,
            world.lists[lst],
            world.contacts[i].id,
            state,
        )
    for i, lst in world.unsubscribed:
        await db.execute(
            "INSERT INTO unsubscriptions (company_id, address, list_id, source)"
            " VALUES ($1, $2, $3, 'page')",
            company,
            world.contacts[i].email,
            0 if lst < 0 else world.lists[lst],
        )
    message = await db.fetchval(
        "INSERT INTO messages (company_id, mail_from, from_domain, body, size)"
        " VALUES ($1, 'n@x.test', 'x.test', '', 0) RETURNING id",
        company,
    )
    for e in world.events:
        address = world.contacts[e.contact].email or ""
        recipient = await db.fetchval(
            "INSERT INTO recipients (message_id, company_id, recipient, domain, expires_at,"
            " state) VALUES ($1, $2, $3, 'x', now(), 'delivered') RETURNING id",
            message,
            company,
            address.upper() if e.upper else address,
        )
        await db.execute(
            "INSERT INTO tracking_events (kind, at, company_id, recipient_id, campaign_id, url,"
            " machine) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            e.kind,
            e.at,
            company,
            recipient,
            e.campaign,
            e.url if e.kind == "click" else None,
            e.machine,
        )
    for b in world.bounces:
        address = world.contacts[b.contact].email
        await db.execute(
            "INSERT INTO bounce_events (company_id, address, domain, kind, reason, hard, source,"
            " created_at) VALUES ($1, $2, 'x', $3, $4, $5, 'dsn', $6)",
            company,
            address,
            b.kind,
            b.reason,
            b.hard if b.kind == "bounced" else None,
            b.at,
        )
    await engagement.catch_up(db)
    return company


# segment-sample without its limit of 20
ALL_MATCHING = segments.SQL["segment-sample"].replace(" LIMIT 20", "")


async def matching(db: asyncpg.Pool, company: int, criteria: dict[str, Any]) -> set[int]:
    condition = segments.compile_criteria(criteria, company_param=1, first_param=2, now=NOW)
    sql = segments.with_condition(ALL_MATCHING, condition)
    async with db.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(segments.WORK_MEM)
        rows = await conn.fetch(sql, company, *condition.params)
    return {r["id"] for r in rows}


def expected(world: World, criteria: dict[str, Any]) -> set[int]:
    return {
        c.id
        for i, c in enumerate(world.contacts)
        if not c.deleted and reference(world, criteria, i)
    }


# --- property: SQL and the reference agree --------------------------------------------------


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds(), data=st.data())
async def test_compiled_criteria_select_exactly_what_the_reference_filter_selects(
    pool: asyncpg.Pool, world: World, data: st.DataObject
) -> None:
    company = await insert_world(pool, world)
    for _ in range(6):
        criteria = data.draw(criteria_for(world.lists))
        segments.validate(criteria)
        assert await matching(pool, company, criteria) == expected(world, criteria), criteria


# --- every operator and engagement rule, by hand --------------------------------------------

ATTRIBUTE_POOL = ["free", "pro", "Pro", 0, 7, 1.5, 99.99, True, False, None, "not a date",
                  *(d.isoformat().replace("+00:00", "Z") for d in DATES)]  # fmt: skip
SCALARS = {
    segments.STRING: [*TEXTS[1:], "P0@GMAIL.COM", "gmail.com", "confirmed", "free"],
    segments.NUMBER: [-1, 0, 7, 1.5, 99.99, 100],
    segments.BOOLEAN: [True, False],
    segments.DATE: [d.isoformat().replace("+00:00", "Z") for d in DATES],
}


def every_comparison(kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"op": op} for op in sorted(segments.PRESENCE)]
    for op in sorted(segments.OPERATORS[kind]):
        if op in ("within_last_days", "before_last_days"):
            out += [{"op": op, "value": d} for d in (1, 10, 30, 100, 365)]
        elif op in ("in", "not_in"):
            pool = SCALARS[kind]
            out += [{"op": op, "value": pool[i : i + 2]} for i in range(0, len(pool), 2)]
        else:
            out += [{"op": op, "value": v} for v in SCALARS[kind]]
    return out


async def test_every_operator_on_fields_and_attributes_agrees_with_the_reference(
    pool: asyncpg.Pool,
) -> None:
    people = []
    for i in range(max(len(TEXTS), len(ATTRIBUTE_POOL)) + 1):
        first = TEXTS[i] if i < len(TEXTS) else None
        value = ATTRIBUTE_POOL[i % len(ATTRIBUTE_POOL)]
        attributes = {} if i == len(ATTRIBUTE_POOL) else {"plan": value, "odd key'; --": value}
        people.append(
            Contact(
                email=f"p{i}@{DOMAINS[i % 3].lower()}",
                first_name=first,
                opt_in_state=("none", "pending", "confirmed")[i % 3],
                created_at=DATES[i % len(DATES)],
                confirmed_at=None if i % 4 == 0 else DATES[(i + 2) % len(DATES)],
                attributes=attributes,
                deleted=i == 3,
            )
        )
    world = World(people, [], [], [], [])
    company = await insert_world(pool, world)
    checked = 0
    for name in ("email", "email_domain", "first_name", "opt_in_state", "created_at",
                 "confirmed_at"):  # fmt: skip
        for comparison in every_comparison(segments.FIELDS[name][1]):
            criteria = segments.validate({"field": name, **comparison})
            assert await matching(pool, company, criteria) == expected(world, criteria), criteria
            checked += 1
    for key in ("plan", "odd key'; --", "missing"):
        for kind in (segments.STRING, segments.NUMBER, segments.BOOLEAN, segments.DATE):
            for comparison in every_comparison(kind):
                criteria = segments.validate({"attribute": key, "type": kind, **comparison})
                got = await matching(pool, company, criteria)
                assert got == expected(world, criteria), criteria
                checked += 1
    assert checked > 400


async def test_machine_opens_and_clicks_are_not_engagement_unless_raw_is_asked(
    pool: asyncpg.Pool,
) -> None:
    people = [Contact(), Contact(), Contact()]
    world = World(
        people,
        [],
        [],
        [
            Event(0, "open", 1, True, DATES[1], None, False),  # Apple MPP only
            Event(1, "open", 1, False, DATES[1], None, True),  # a person
            Event(2, "click", 2, True, DATES[1], URLS[0], False),  # a link scanner
        ],
        [],
    )
    for i, c in enumerate(people):
        c.email = f"m{i}@example.net"
    company = await insert_world(pool, world)
    ids = [c.id for c in people]
    assert await matching(pool, company, {"engagement": "opened"}) == {ids[1]}
    assert await matching(pool, company, {"engagement": "opened", "raw": True}) == set(ids[:2])
    assert await matching(pool, company, {"engagement": "never_opened"}) == {ids[0], ids[2]}
    assert await matching(pool, company, {"engagement": "clicked", "campaign": 2}) == set()
    raw_link = {"engagement": "clicked", "link": URLS[0], "raw": True}
    assert await matching(pool, company, raw_link) == {ids[2]}
    assert await matching(pool, company, {**raw_link, "raw": False}) == set()


async def test_engagement_catch_up_reads_each_event_once_in_effect(pool: asyncpg.Pool) -> None:
    """Re-reading the margin folds nothing new in: the rows hold the same times."""
    world = World([Contact(email="x@example.net")], [], [], [
        Event(0, "open", 1, False, DATES[2], None, False),
    ], [])  # fmt: skip
    company = await insert_world(pool, world)
    before = await pool.fetch("SELECT * FROM contact_engagement WHERE company_id = $1", company)
    again = await engagement.catch_up(pool)
    assert again is not None and not again.behind
    after = await pool.fetch("SELECT * FROM contact_engagement WHERE company_id = $1", company)
    assert before == after and len(after) == 1
    assert after[0]["last_human_open_at"] == DATES[2] and after[0]["last_click_at"] is None


# --- validation names the bad part ----------------------------------------------------------

INVALID = [
    ([], "criteria", "must be an object"),
    ({"all": []}, "criteria.all", "non-empty array"),
    ({"all": [{"field": "email"}]}, "criteria.all[0].op", "must be one of"),
    ({"field": "nope", "op": "equals", "value": "x"}, "criteria.field", "must be one of"),
    ({"field": "email", "op": "gt", "value": "x"}, "criteria.op", "does not apply to a string"),
    ({"attribute": "age", "op": "gt", "value": "soon"}, "criteria.value", "ISO 8601"),
    ({"attribute": "age", "op": "in", "value": [1, "a"]}, "criteria.value[1]", "number"),
    ({"attribute": "", "op": "exists"}, "criteria.attribute", "attribute name"),
    ({"attribute": "a", "op": "exists", "value": 1}, "criteria.value", "takes no value"),
    ({"any": [{"list": 0}]}, "criteria.any[0].list", "positive integer"),
    ({"not": {"list": 3, "status": "gone"}}, "criteria.not.status", "must be one of"),
    ({"engagement": "opened", "within_days": 0}, "criteria.within_days", "whole number"),
    ({"engagement": "opened", "link": "https://x"}, "criteria.link", "clicked"),
    ({"engagement": "clicked", "link": "javascript:1"}, "criteria.link", "http"),
    ({"bounced": "hard", "reason": []}, "criteria.reason", "non-empty"),
    ({"complained": "yes"}, "criteria.complained", "true or false"),
    ({"list": 1, "consent": "none"}, "criteria", "one condition per object"),
    ({"list": 1, "extra": 1}, "criteria.extra", "unknown key"),
    ({"field": "email", "op": "equals", "value": "a\x00b"}, "criteria.value", "NUL"),
]


@pytest.mark.parametrize(("criteria", "path", "reason"), INVALID)
def test_invalid_criteria_are_refused_naming_the_bad_part(
    criteria: Any, path: str, reason: str
) -> None:
    with pytest.raises(segments.SegmentInvalid) as caught:
        segments.validate(criteria)
    assert caught.value.path == path
    assert reason in caught.value.reason


def test_depth_and_size_are_bounded() -> None:
    deep: dict[str, Any] = {"consent": "none"}
    for _ in range(segments.MAX_DEPTH + 1):
        deep = {"all": [deep]}
    with pytest.raises(segments.SegmentInvalid, match="nest"):
        segments.validate(deep)
    wide = {"any": [{"consent": "none"}] * (segments.MAX_CONDITIONS + 1)}
    with pytest.raises(segments.SegmentInvalid, match="at most"):
        segments.validate(wide)


# --- injection ------------------------------------------------------------------------------

HOSTILE = [
    "x'; DROP TABLE contacts; --",
    "') OR true --",
    "$1 OR $2",
    "\\'; SELECT pg_sleep(5); --",
    "*/ OR 1=1 /*",
    "%",
]


def test_no_value_or_attribute_name_reaches_the_sql_text() -> None:
    for hostile in HOSTILE:
        criteria = {
            "any": [
                {"attribute": hostile, "op": "equals", "value": hostile},
                {"field": "first_name", "op": "contains", "value": hostile},
                {"engagement": "clicked", "link": "https://e.test/" + hostile},
                {"bounced": "soft", "reason": [hostile]},
            ]
        }
        condition = segments.compile_criteria(segments.validate(criteria))
        assert hostile not in condition.sql
        assert hostile in condition.params


async def test_injection_attempts_match_literally_and_harm_nothing(pool: asyncpg.Pool) -> None:
    people = [Contact(first_name=h, attributes={h: h}) for h in HOSTILE] + [Contact()]
    for i, c in enumerate(people):
        c.email = f"i{i}@example.net"
    world = World(people, [], [], [], [])
    company = await insert_world(pool, world)
    for i, hostile in enumerate(HOSTILE):
        for criteria in (
            {"attribute": hostile, "op": "equals", "value": hostile},
            {"field": "first_name", "op": "equals", "value": hostile},
            {"attribute": hostile, "op": "exists"},
        ):
            assert await matching(pool, company, criteria) == {people[i].id}, criteria
    # "contains %" is a literal percent sign, not a LIKE wildcard
    percent = await matching(pool, company, {"field": "first_name", "op": "contains", "value": "%"})
    assert percent == {people[HOSTILE.index("%")].id}
    assert await pool.fetchval("SELECT count(*) FROM contacts WHERE company_id = $1", company) == 7


# --- the preview endpoint and validation on save --------------------------------------------


async def test_preview_counts_and_samples_with_the_lists_permission_and_masking(
    make_control: MakeControl,
) -> None:
    control = await make_control()
    c = control.client
    company = await control.company()
    admin = await control.user(company, "admin")
    analyst = await control.user(company, "analyst")
    creator = await control.user(company, "content_creator")
    ids = []
    for i in range(25):
        plan = "pro" if i % 2 else "free"
        r = await c.post(
            "/api/contacts/",
            headers=admin.auth,
            json={"email": f"Pat{i}@Example.net", "attributes": {"plan": plan, "seats": i}},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    body = {"criteria": {"attribute": "plan", "op": "equals", "value": "pro"}}
    r = await c.post("/api/segments/preview", headers=admin.auth, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 12
    assert [s["id"] for s in r.json()["sample"]] == ids[1::2]
    assert r.json()["sample"][0]["email"] == "pat1@example.net"
    everyone = await c.post("/api/segments/preview", headers=admin.auth, json={"criteria": {}})
    assert everyone.json()["count"] == 25 and len(everyone.json()["sample"]) == 20
    masked = await c.post("/api/segments/preview", headers=analyst.auth, json=body)
    assert masked.status_code == 200
    assert masked.json()["sample"][0]["email"] == "p***@example.net"
    assert masked.json()["sample"][0]["attributes"] == {}
    denied = await c.post("/api/segments/preview", headers=creator.auth, json=body)
    assert denied.status_code == 403
    bad = {"criteria": {"all": [{"attribute": "seats", "op": "gt", "value": [3]}]}}
    r = await c.post("/api/segments/preview", headers=admin.auth, json=bad)
    assert r.status_code == 422
    assert "criteria.all[0].value" in r.json()["details"]["fields"]


async def test_another_companys_lists_and_campaigns_are_not_found(
    make_control: MakeControl,
) -> None:
    control = await make_control()
    c = control.client
    mine, theirs = await control.company(), await control.company()
    me = await control.user(mine, "admin")
    them = await control.user(theirs, "admin")
    their = await control.fixtures(them)
    body = {
        "criteria": {
            "any": [
                {"list": their["list"]},
                {"engagement": "opened", "campaign": their["campaign"]},
            ]
        }
    }
    r = await c.post("/api/segments/preview", headers=me.auth, json=body)
    assert r.status_code == 422
    assert r.json()["details"]["fields"] == {
        "criteria.any[0].list": "no such list in your company",
        "criteria.any[1].campaign": "no such campaign in your company",
    }
    r = await c.post(
        "/api/segments/preview", headers=me.auth, json={"criteria": {}, "list_id": their["list"]}
    )
    assert r.status_code == 422 and "list_id" in r.json()["details"]["fields"]
    r = await c.post("/api/segments/preview", headers=them.auth, json=body)
    assert r.status_code == 200 and r.json()["count"] == 1  # their own contact, on their list


async def test_segment_criteria_are_validated_when_lists_and_campaigns_are_saved(
    make_control: MakeControl,
) -> None:
    control = await make_control()
    c = control.client
    company = await control.company()
    admin = await control.user(company, "admin")
    ids = await control.fixtures(admin)
    bad = {"all": [{"field": "email", "op": "starts_with"}]}
    r = await c.post(
        "/api/email-lists/",
        headers=admin.auth,
        json=list_body("DYN1", list_type="dynamic", segment_criteria=bad),
    )
    assert r.status_code == 422
    assert r.json()["details"]["fields"] == {
        "segment_criteria.all[0].value": "is required with starts_with"
    }
    r = await c.post(
        "/api/email-lists/", headers=admin.auth, json=list_body("DYN2", list_type="segment")
    )
    assert r.status_code == 422
    assert "segment_criteria" in r.json()["details"]["fields"]
    good = {"engagement": "opened", "campaign": ids["campaign"], "within_days": 30}
    r = await c.post(
        "/api/email-lists/",
        headers=admin.auth,
        json=list_body("DYN3", list_type="dynamic", segment_criteria=good),
    )
    assert r.status_code == 201, r.text
    r = await c.patch(
        f"/api/email-campaigns/{ids['campaign']}/",
        headers=admin.auth,
        json={"segment_criteria": {"list": 10**12}},
    )
    assert r.status_code == 422
    assert r.json()["details"]["fields"] == {
        "segment_criteria.list": "no such list in your company"
    }
    r = await c.patch(
        f"/api/email-campaigns/{ids['campaign']}/",
        headers=admin.auth,
        json={"segment_criteria": {"list": ids["list"], "status": "subscribed"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["segment_criteria"] == {"list": ids["list"], "status": "subscribed"}


async def test_erasing_a_contact_deletes_what_it_opened_and_clicked(
    make_control: MakeControl,
) -> None:
    control = await make_control()
    company = await control.company()
    admin = await control.user(company, "admin")
    r = await control.client.post(
        "/api/contacts/", headers=admin.auth, json={"email": "gone@example.net"}
    )
    contact = r.json()["id"]
    db = control.pool
    message = await db.fetchval(
        "INSERT INTO messages (company_id, mail_from, from_domain, body, size)"
        " VALUES ($1, 'n@x.test', 'x.test', '', 0) RETURNING id",
        company.id,
    )
    recipient = await db.fetchval(
        "INSERT INTO recipients (message_id, company_id, recipient, domain, expires_at)"
        " VALUES ($1, $2, 'Gone@example.net', 'example.net', now()) RETURNING id",
        message,
        company.id,
    )
    await db.execute(
        "INSERT INTO tracking_events (kind, at, company_id, recipient_id, campaign_id)"
        " VALUES ('open', now(), $1, $2, 5), ('click', now(), $1, $2, 5)",
        company.id,
        recipient,
    )
    await engagement.catch_up(db)
    opened = {"criteria": {"engagement": "clicked"}}
    r = await control.client.post("/api/segments/preview", headers=admin.auth, json=opened)
    assert r.json()["count"] == 1
    r = await control.client.post(f"/api/contacts/{contact}/erase/", headers=admin.auth)
    assert r.status_code == 200, r.text
    for table in ("contact_engagement", "contact_campaign_engagement"):
        left = await db.fetchval(f"SELECT count(*) FROM {table} WHERE contact_id = $1", contact)
        assert left == 0, table


async def test_the_rollup_loop_folds_new_events_in_while_it_runs(pool: asyncpg.Pool) -> None:
    world = World([Contact(email="loop@example.net")], [], [], [], [])
    company = await insert_world(pool, world)
    loop = engagement.EngagementRollup(pool, 0.05)
    loop.start()
    try:
        message = await pool.fetchval("SELECT id FROM messages WHERE company_id = $1", company)
        recipient = await pool.fetchval(
            "INSERT INTO recipients (message_id, company_id, recipient, domain, expires_at)"
            " VALUES ($1, $2, 'loop@example.net', 'example.net', now()) RETURNING id",
            message,
            company,
        )
        await pool.execute(
            "INSERT INTO tracking_events (kind, at, company_id, recipient_id, campaign_id)"
            " VALUES ('click', now(), $1, $2, 9)",
            company,
            recipient,
        )
        for _ in range(100):  # up to 5 s
            if await matching(pool, company, {"engagement": "clicked", "campaign": 9}):
                break
            await asyncio.sleep(0.05)
        assert await matching(pool, company, {"engagement": "clicked", "campaign": 9}) == {
            world.contacts[0].id
        }
    finally:
        await loop.stop()
