"""Segment criteria: the JSON grammar (README, "Segments"), its validation, and its compiler to
a parameterised SQL condition over the contacts table (issue 15). Pure: no I/O, and `now` is
an argument, so relative dates are testable.

    validate(criteria)                  -> the criteria, or SegmentInvalid naming the bad part
    compile_criteria(criteria, company_param=1, first_param=2, now=...)
                                        -> SqlCondition(sql, params)
    with_condition(query, condition)    -> a named query with the condition put in

`SqlCondition.sql` is a boolean expression over the row `c` of `contacts` and `ce`, the
contact's row of `contact_engagement` (FROM_CONTACTS below: the query must read contacts that
way); it refers to the caller's company as `$<company_param>` and to its own values as
`$<first_param>`... in order, so any query over FROM_CONTACTS can AND it in (the campaign
audience does). Attribute names,
values, ids and URLs only ever travel as parameters: the SQL text is made of the fixed
fragments below, chosen by the criteria's operators, never of anything the criteria contain.

Every condition is two-valued (never NULL), so `not` and the negative operators are exact
negations: `not_equals "gold"` matches a contact without the attribute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mta.queries import Queries

SQL = Queries("control")
# The subqueries of engagement, lists and bounces are read once into hashes; their sets run
# to a million contacts, which the default work_mem (4 MB) would refuse to hash and fall
# back to a rescan per contact. Bounded by the statement timeout.
WORK_MEM = "SET LOCAL work_mem = '64MB'"
STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '20s'"
SEGMENT_MARKER = "/* segment */ true"
# What a query must select from for the criteria to read. The join is on contact_engagement's
# primary key: when criteria do not mention `ce`, PostgreSQL removes it from the plan. It
# makes "opened in the last 30 days" and "never opened" a merge of two tables in id order
# instead of a hash of a million ids built in every parallel worker (5.3 s measured).
FROM_CONTACTS = (
    "contacts c LEFT JOIN contact_engagement ce "
    "ON ce.company_id = c.company_id AND ce.contact_id = c.id"
)

MAX_DEPTH = 6  # groups within groups
MAX_CONDITIONS = 60  # leaves in all
MAX_VALUES = 500  # items of an `in` list
MAX_TEXT = 500  # characters of a value, attribute name or URL
MAX_DAYS = 36_500
CONTAINMENT_VALUES = 10  # `in` lists up to this long also try the GIN index, one probe each

STRING, NUMBER, DATE, BOOLEAN = "string", "number", "date", "boolean"
# Contact fields: name -> (SQL expression over `c`, type). The only column names that reach
# the SQL text, and they come from this table, never from the criteria.
FIELDS: Mapping[str, tuple[str, str]] = {
    "email": ("c.email", STRING),
    "email_domain": ("split_part(c.email, '@', 2)", STRING),
    "first_name": ("c.first_name", STRING),
    "last_name": ("c.last_name", STRING),
    "consent_source": ("c.consent_source", STRING),
    "opt_in_state": ("c.opt_in_state::text", STRING),
    "created_at": ("c.created_at", DATE),
    "updated_at": ("c.updated_at", DATE),
    "consent_at": ("c.consent_at", DATE),
    "confirmed_at": ("c.confirmed_at", DATE),
}
OPERATORS: Mapping[str, frozenset[str]] = {
    STRING: frozenset(
        {"equals", "not_equals", "contains", "not_contains", "starts_with", "in", "not_in"}
    ),
    NUMBER: frozenset({"equals", "not_equals", "in", "not_in", "gt", "gte", "lt", "lte"}),
    DATE: frozenset({"gt", "gte", "lt", "lte", "within_last_days", "before_last_days"}),
    BOOLEAN: frozenset({"equals", "not_equals"}),
}
PRESENCE = frozenset({"exists", "not_exists"})
ALL_OPERATORS = frozenset().union(*OPERATORS.values(), PRESENCE)
NEGATIONS = {"not_equals": "equals", "not_contains": "contains", "not_in": "in"}
CONSENT_STATES = ("none", "pending", "confirmed", "unsubscribed")
LIST_STATUSES = ("subscribed", "unsubscribed", "any")
ENGAGEMENTS = ("opened", "clicked", "never_opened", "never_clicked")
BOUNCE_KINDS = ("hard", "soft", "any")
# The keys that say what a condition is; exactly one per object.
KINDS = ("all", "any", "not", "field", "attribute", "list", "consent", "engagement", "bounced",
         "complained")  # fmt: skip
ALLOWED_KEYS: Mapping[str, frozenset[str]] = {
    "all": frozenset({"all"}),
    "any": frozenset({"any"}),
    "not": frozenset({"not"}),
    "field": frozenset({"field", "op", "value"}),
    "attribute": frozenset({"attribute", "op", "value", "type"}),
    "list": frozenset({"list", "status"}),
    "consent": frozenset({"consent"}),
    "engagement": frozenset({"engagement", "campaign", "within_days", "link", "raw"}),
    "bounced": frozenset({"bounced", "reason", "within_days"}),
    "complained": frozenset({"complained", "within_days"}),
}


class SegmentInvalid(ValueError):
    """Criteria that break the grammar: `path` names the bad part (`criteria.all[2].op`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Reference:
    """An id the criteria name, to be checked against the caller's company."""

    path: str  # criteria.all[1].list
    kind: str  # "list" or "campaign"
    id: int


@dataclass(frozen=True, slots=True)
class SqlCondition:
    """A boolean SQL expression over `contacts c` and the values of its placeholders."""

    sql: str
    params: tuple[Any, ...]


# --- validation -----------------------------------------------------------------------------


def validate(criteria: Any, path: str = "criteria") -> dict[str, Any]:
    """The criteria, checked against the grammar; `{}` means every contact. Raises
    SegmentInvalid with the path of the first bad part."""
    if not isinstance(criteria, dict):
        raise SegmentInvalid(path, "must be an object")
    if not criteria:
        return criteria
    counter = [0]
    _check(criteria, path, 0, counter)
    return criteria


def references(criteria: Mapping[str, Any], path: str = "criteria") -> list[Reference]:
    """The list and campaign ids of (validated) criteria, with where each appears."""
    found: list[Reference] = []

    def walk(node: Mapping[str, Any], at: str) -> None:
        for key in ("all", "any"):
            for i, child in enumerate(node.get(key, ())):
                walk(child, f"{at}.{key}[{i}]")
        if "not" in node:
            walk(node["not"], f"{at}.not")
        if "list" in node:
            found.append(Reference(f"{at}.list", "list", node["list"]))
        if "engagement" in node and node.get("campaign") is not None:
            found.append(Reference(f"{at}.campaign", "campaign", node["campaign"]))

    if criteria:
        walk(criteria, path)
    return found


def _kind(node: dict[str, Any], path: str) -> str:
    kinds = [k for k in KINDS if k in node]
    if len(kinds) != 1:
        expected = ", ".join(KINDS)
        raise SegmentInvalid(
            path, f"must have exactly one of {expected}" if not kinds else
            f"has both {kinds[0]} and {kinds[1]}; one condition per object"
        )  # fmt: skip
    unknown = sorted(set(node) - ALLOWED_KEYS[kinds[0]])
    if unknown:
        raise SegmentInvalid(f"{path}.{unknown[0]}", f"unknown key for a {kinds[0]} condition")
    return kinds[0]


def _check(node: Any, path: str, depth: int, counter: list[int]) -> None:
    if not isinstance(node, dict):
        raise SegmentInvalid(path, "must be an object")
    kind = _kind(node, path)
    if kind in ("all", "any"):
        children = node[kind]
        where = f"{path}.{kind}"
        if not isinstance(children, list) or not children:
            raise SegmentInvalid(where, "must be a non-empty array of conditions")
        if depth >= MAX_DEPTH:
            raise SegmentInvalid(where, f"groups nest at most {MAX_DEPTH} deep")
        for i, child in enumerate(children):
            _check(child, f"{where}[{i}]", depth + 1, counter)
        return
    if kind == "not":
        if depth >= MAX_DEPTH:
            raise SegmentInvalid(f"{path}.not", f"groups nest at most {MAX_DEPTH} deep")
        _check(node["not"], f"{path}.not", depth + 1, counter)
        return
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise SegmentInvalid(path, f"at most {MAX_CONDITIONS} conditions in a segment")
    CHECKS[kind](node, path)


def _text(value: Any, path: str, what: str = "a string") -> str:
    if not isinstance(value, str) or not value:
        raise SegmentInvalid(path, f"must be {what}")
    if len(value) > MAX_TEXT:
        raise SegmentInvalid(path, f"must be at most {MAX_TEXT} characters")
    if "\x00" in value:
        raise SegmentInvalid(path, "must not contain NUL characters")
    return value


def _id(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise SegmentInvalid(path, "must be an id (a positive integer)")
    return value


def _days(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DAYS:
        raise SegmentInvalid(path, f"must be a whole number of days from 1 to {MAX_DAYS}")
    return value


def _flag(node: Mapping[str, Any], key: str, path: str) -> None:
    if key in node and not isinstance(node[key], bool):
        raise SegmentInvalid(f"{path}.{key}", "must be true or false")


def parse_date(value: Any) -> datetime:
    """An ISO 8601 date or date-time; without a zone it is UTC. ValueError otherwise."""
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("not a date")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _scalar_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float):
        return NUMBER if math.isfinite(value) else None
    if isinstance(value, str):
        return STRING
    return None


def _value(value: Any, kind: str, op: str, path: str) -> None:
    """`value` fits operator `op` on a `kind` operand."""
    if op in PRESENCE:
        if value is not None:
            raise SegmentInvalid(path, f"takes no value with {op}")
        return
    if op in ("within_last_days", "before_last_days"):
        _days(value, path)
        return
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise SegmentInvalid(path, f"must be a non-empty array with {op}")
        if len(value) > MAX_VALUES:
            raise SegmentInvalid(path, f"at most {MAX_VALUES} values")
        for i, item in enumerate(value):
            _value(item, kind, "equals", f"{path}[{i}]")
        return
    if kind == DATE:
        try:
            parse_date(value)
        except (ValueError, TypeError):
            raise SegmentInvalid(
                path, "must be an ISO 8601 date like 2026-05-01T09:00:00Z"
            ) from None
        return
    if _scalar_type(value) != kind:
        raise SegmentInvalid(path, f"must be a {kind} for {op}")
    if kind == STRING:
        _text(value, path, "a non-empty string")


def attribute_type(node: Mapping[str, Any]) -> str:
    """The type an attribute condition compares as: declared, else from its operator and
    value (a number, a boolean, a string; a string with gt/lt/... is a date)."""
    if "type" in node:
        return node["type"]
    op, value = node["op"], node.get("value")
    if op in ("within_last_days", "before_last_days"):
        return DATE
    if isinstance(value, list) and value:
        value = value[0]
    found = _scalar_type(value) or STRING
    if found == STRING and op in ("gt", "gte", "lt", "lte"):
        return DATE
    return found


def _check_comparison(node: dict[str, Any], path: str, kind: str) -> None:
    op = node.get("op")
    if not isinstance(op, str) or op not in ALL_OPERATORS:
        raise SegmentInvalid(f"{path}.op", f"must be one of {', '.join(sorted(ALL_OPERATORS))}")
    if op not in PRESENCE and op not in OPERATORS[kind]:
        allowed = ", ".join(sorted(OPERATORS[kind] | PRESENCE))
        raise SegmentInvalid(f"{path}.op", f"{op} does not apply to a {kind}; use one of {allowed}")
    if op not in PRESENCE and "value" not in node:
        raise SegmentInvalid(f"{path}.value", f"is required with {op}")
    _value(node.get("value"), kind, op, f"{path}.value")


def _check_field(node: dict[str, Any], path: str) -> None:
    name = node["field"]
    if not isinstance(name, str) or name not in FIELDS:
        raise SegmentInvalid(f"{path}.field", f"must be one of {', '.join(FIELDS)}")
    _check_comparison(node, path, FIELDS[name][1])


def _check_attribute(node: dict[str, Any], path: str) -> None:
    _text(node["attribute"], f"{path}.attribute", "an attribute name")
    if "type" in node and node["type"] not in OPERATORS:
        raise SegmentInvalid(f"{path}.type", f"must be one of {', '.join(OPERATORS)}")
    if not isinstance(node.get("op"), str):
        raise SegmentInvalid(f"{path}.op", f"must be one of {', '.join(sorted(ALL_OPERATORS))}")
    _check_comparison(node, path, attribute_type(node))


def _check_list(node: dict[str, Any], path: str) -> None:
    _id(node["list"], f"{path}.list")
    if node.get("status", "subscribed") not in LIST_STATUSES:
        raise SegmentInvalid(f"{path}.status", f"must be one of {', '.join(LIST_STATUSES)}")


def _check_consent(node: dict[str, Any], path: str) -> None:
    if node["consent"] not in CONSENT_STATES:
        raise SegmentInvalid(f"{path}.consent", f"must be one of {', '.join(CONSENT_STATES)}")


def _check_engagement(node: dict[str, Any], path: str) -> None:
    what = node["engagement"]
    if what not in ENGAGEMENTS:
        raise SegmentInvalid(f"{path}.engagement", f"must be one of {', '.join(ENGAGEMENTS)}")
    if "campaign" in node:
        _id(node["campaign"], f"{path}.campaign")
    if "within_days" in node:
        _days(node["within_days"], f"{path}.within_days")
    if "link" in node:
        if what not in ("clicked", "never_clicked"):
            raise SegmentInvalid(f"{path}.link", "applies to clicked and never_clicked only")
        link = _text(node["link"], f"{path}.link", "a URL")
        if not link.startswith(("http://", "https://")):
            raise SegmentInvalid(f"{path}.link", "must be an http(s) URL")
    _flag(node, "raw", path)


def _check_bounced(node: dict[str, Any], path: str) -> None:
    if node["bounced"] not in BOUNCE_KINDS:
        raise SegmentInvalid(f"{path}.bounced", f"must be one of {', '.join(BOUNCE_KINDS)}")
    reason = node.get("reason")
    if reason is not None:
        reasons = reason if isinstance(reason, list) else [reason]
        if not reasons or len(reasons) > MAX_VALUES:
            raise SegmentInvalid(f"{path}.reason", "must be a reason or a non-empty array")
        for i, r in enumerate(reasons):
            _text(r, f"{path}.reason" + (f"[{i}]" if isinstance(reason, list) else ""))
    if "within_days" in node:
        _days(node["within_days"], f"{path}.within_days")


def _check_complained(node: dict[str, Any], path: str) -> None:
    _flag(node, "complained", path)
    if "within_days" in node:
        _days(node["within_days"], f"{path}.within_days")


CHECKS: Mapping[str, Callable[[dict[str, Any], str], None]] = {
    "field": _check_field,
    "attribute": _check_attribute,
    "list": _check_list,
    "consent": _check_consent,
    "engagement": _check_engagement,
    "bounced": _check_bounced,
    "complained": _check_complained,
}


# --- compilation ----------------------------------------------------------------------------

# Attribute operands by type: NULL unless the attribute holds a JSON value of that type, so a
# cast never fails on a contact's data (pg_input_is_valid: PostgreSQL 16).
_ATTRIBUTE_AS = {
    STRING: "CASE WHEN jsonb_typeof(c.attributes -> {k}) = 'string' THEN c.attributes ->> {k} END",
    NUMBER: "CASE WHEN jsonb_typeof(c.attributes -> {k}) = 'number' "
    "THEN (c.attributes ->> {k})::numeric END",
    DATE: "CASE WHEN jsonb_typeof(c.attributes -> {k}) = 'string' "
    "AND pg_input_is_valid(c.attributes ->> {k}, 'timestamptz') "
    "THEN (c.attributes ->> {k})::timestamptz END",
    BOOLEAN: "CASE WHEN jsonb_typeof(c.attributes -> {k}) = 'boolean' "
    "THEN (c.attributes ->> {k})::boolean END",
}
_CAST = {STRING: "text", NUMBER: "numeric", DATE: "timestamptz", BOOLEAN: "boolean"}
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass
class _Builder:
    company: str
    next_param: int
    now: datetime
    params: list[Any] = field(default_factory=list)

    def param(self, value: Any, cast: str) -> str:
        self.params.append(value)
        placeholder = f"${self.next_param}::{cast}"
        self.next_param += 1
        return placeholder

    def cutoff(self, days: int) -> str:
        return self.param(self.now - timedelta(days=days), "timestamptz")


def compile_criteria(
    criteria: Mapping[str, Any],
    *,
    company_param: int = 1,
    first_param: int = 2,
    now: datetime | None = None,
) -> SqlCondition:
    """The SQL condition of validated `criteria` (see the module docstring). `now` anchors
    relative dates ("in the last 30 days"); default: the current time."""
    builder = _Builder(f"${company_param}::bigint", first_param, now or datetime.now(UTC))
    sql = _node(criteria, builder) if criteria else "true"
    return SqlCondition(sql, tuple(builder.params))


def with_condition(query: str, condition: SqlCondition) -> str:
    """`query` (a named query holding the marker `/* segment */ true`) with the condition in
    its place; the condition's placeholders must follow the query's own."""
    if query.count(SEGMENT_MARKER) != 1:
        raise ValueError("the query has no single segment marker")
    return query.replace(SEGMENT_MARKER, f"({condition.sql})")


def _node(node: Mapping[str, Any], b: _Builder) -> str:
    if "all" in node:
        return "(" + " AND ".join(_node(child, b) for child in node["all"]) + ")"
    if "any" in node:
        return "(" + " OR ".join(_node(child, b) for child in node["any"]) + ")"
    if "not" in node:
        return f"(NOT {_node(node['not'], b)})"
    if "field" in node:
        expression, kind = FIELDS[node["field"]]
        if node["field"] in ("email", "email_domain") and "value" in node:
            node = {**node, "value": _lower(node["value"])}  # addresses are kept lower-cased
        return _comparison(expression, kind, node, b)
    if "attribute" in node:
        return _attribute(node, b)
    if "list" in node:
        return _list(node, b)
    if "consent" in node:
        return _consent(node, b)
    if "engagement" in node:
        return _engagement(node, b)
    if "bounced" in node:
        return _bounced(node, b)
    return _complained(node, b)


def _attribute(node: Mapping[str, Any], b: _Builder) -> str:
    key = b.param(node["attribute"], "text")
    op = node["op"]
    if op in PRESENCE:
        present = f"coalesce(jsonb_typeof(c.attributes -> {key}) <> 'null', false)"
        return present if op == "exists" else f"(NOT {present})"
    kind = attribute_type(node)
    test = _comparison(_ATTRIBUTE_AS[kind].format(k=key), kind, node, b)
    guard = _containment(node, kind, b)
    return test if guard is None else f"({guard} AND {test})"


def _containment(node: Mapping[str, Any], kind: str, b: _Builder) -> str | None:
    """For equals and short `in` lists, the same test as `attributes @> {"name": value}`,
    which the GIN index on attributes answers (control/schema/0020) instead of reading every
    contact; the typed comparison beside it keeps the meaning exact. None where it cannot
    help (negations are wrapped around this by _comparison, dates are strings of any form)."""
    op = node["op"]
    if kind == DATE or op not in ("equals", "in"):
        return None
    values = node["value"] if op == "in" else [node["value"]]
    if len(values) > CONTAINMENT_VALUES:
        return None
    tests = [f"c.attributes @> {b.param({node['attribute']: v}, 'jsonb')}" for v in values]
    return "(" + " OR ".join(tests) + ")"


def _comparison(expression: str, kind: str, node: Mapping[str, Any], b: _Builder) -> str:
    op, value = node["op"], node.get("value")
    if op in NEGATIONS:
        return f"(NOT {_comparison(expression, kind, {**node, 'op': NEGATIONS[op]}, b)})"
    if op in PRESENCE:
        present = f"({expression} IS NOT NULL)"
        if kind == STRING:
            present = f"coalesce({expression} <> '', false)"
        return present if op == "exists" else f"(NOT {present})"
    if op == "equals":
        test = f"{expression} = {b.param(_operand(value, kind), _CAST[kind])}"
    elif op == "in":
        values = [_operand(v, kind) for v in value]
        test = f"{expression} = ANY({b.param(values, _CAST[kind] + '[]')})"
    elif op == "contains":
        test = f"strpos({expression}, {b.param(value, 'text')}) > 0"
    elif op == "starts_with":
        test = f"starts_with({expression}, {b.param(value, 'text')})"
    elif op in _COMPARE:
        test = f"{expression} {_COMPARE[op]} {b.param(_operand(value, kind), _CAST[kind])}"
    elif op == "within_last_days":
        now = b.param(b.now, "timestamptz")
        test = f"{expression} BETWEEN {b.cutoff(value)} AND {now}"
    else:  # before_last_days
        test = f"{expression} < {b.cutoff(value)}"
    return f"coalesce({test}, false)"


def _lower(value: Any) -> Any:
    return [v.lower() for v in value] if isinstance(value, list) else value.lower()


def _operand(value: Any, kind: str) -> Any:
    if kind == DATE:
        return parse_date(value)
    if kind == NUMBER:
        return value if isinstance(value, int) else _decimal(value)
    return value


def _decimal(value: float) -> Any:
    # a float's shortest repr, exactly as JSON wrote it, not its binary expansion
    from decimal import Decimal

    return Decimal(repr(value))


def _list(node: Mapping[str, Any], b: _Builder) -> str:
    list_id = b.param(node["list"], "bigint")
    member = (
        f"c.id IN (SELECT m.contact_id FROM list_members m WHERE m.list_id = {list_id} "
        f"AND m.company_id = {b.company}{{state}})"
    )
    # an address unsubscribed through mail (mta's unsubscriptions) is not subscribed: the
    # effective membership, as the list's member count and the audience see it
    left = (
        f"EXISTS (SELECT 1 FROM unsubscriptions u WHERE u.company_id = {b.company} "
        f"AND u.address = c.email AND u.list_id IN (0, {list_id}))"
    )
    status = node.get("status", "subscribed")
    if status == "any":
        return member.format(state="")
    subscribed = member.format(state=" AND m.state = 'subscribed'")
    if status == "subscribed":
        return f"CASE WHEN {subscribed} THEN NOT {left} ELSE false END"
    return f"(CASE WHEN {subscribed} THEN {left} ELSE {member.format(state='')} END)"


def _consent(node: Mapping[str, Any], b: _Builder) -> str:
    state = node["consent"]
    if state == "unsubscribed":
        return (
            f"c.email IN (SELECT u.address FROM unsubscriptions u "
            f"WHERE u.company_id = {b.company} AND u.list_id = 0)"
        )
    return f"c.opt_in_state = {b.param(state, 'opt_in_state')}"


def _engagement(node: Mapping[str, Any], b: _Builder) -> str:
    what = node["engagement"]
    negated = what.startswith("never_")
    verb = "open" if what.endswith("opened") else "click"
    if "link" in node:
        test = _link_clicked(node, b)
    else:
        column = f"last_{'' if node.get('raw') else 'human_'}{verb}_at"
        alias = "g" if node.get("campaign") is not None else "ce"
        happened = f"{alias}.{column} IS NOT NULL"
        if "within_days" in node:
            happened += f" AND {alias}.{column} >= {b.cutoff(node['within_days'])}"
        if alias == "g":
            campaign = b.param(node["campaign"], "bigint")
            test = (
                "c.id IN (SELECT g.contact_id FROM contact_campaign_engagement g "
                f"WHERE g.company_id = {b.company} AND g.campaign_id = {campaign} "
                f"AND {happened})"
            )
        else:  # the contact's own engagement row, joined in FROM_CONTACTS
            test = f"coalesce({happened}, false)"
    return f"(NOT {test})" if negated else test


def _link_clicked(node: Mapping[str, Any], b: _Builder) -> str:
    # Clicks of one URL are few: read from the events (hash index on url), not a rollup.
    where = [
        "t.kind = 'click'",
        f"t.url = {b.param(node['link'], 'text')}",
        f"t.company_id = {b.company}",
    ]
    if not node.get("raw"):
        where.append("NOT t.machine")
    if node.get("campaign") is not None:
        where.append(f"t.campaign_id = {b.param(node['campaign'], 'bigint')}")
    if "within_days" in node:
        where.append(f"t.at >= {b.cutoff(node['within_days'])}")
    return (
        "c.email IN (SELECT lower(r.recipient) FROM tracking_events t "
        f"JOIN recipients r ON r.id = t.recipient_id WHERE {' AND '.join(where)})"
    )


def _bounced(node: Mapping[str, Any], b: _Builder) -> str:
    # The contact's LAST bounce decides: an address that bounced soft once and was delivered
    # since is still "last bounce soft" until it bounces again (bounce_events are failures).
    where = []
    if node["bounced"] != "any":
        where.append(f"last.hard = {b.param(node['bounced'] == 'hard', 'boolean')}")
    reason = node.get("reason")
    if reason is not None:
        reasons = reason if isinstance(reason, list) else [reason]
        where.append(f"last.reason = ANY({b.param(reasons, 'text[]')})")
    if "within_days" in node:
        where.append(f"last.created_at >= {b.cutoff(node['within_days'])}")
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    return (
        "c.email IN (SELECT last.address FROM (SELECT DISTINCT ON (e.address) e.address, "
        "e.hard, e.reason, e.created_at FROM bounce_events e "
        f"WHERE e.company_id = {b.company} AND e.kind = 'bounced' "
        f"ORDER BY e.address, e.created_at DESC, e.id DESC) last{condition})"
    )


def _complained(node: Mapping[str, Any], b: _Builder) -> str:
    since = ""
    if "within_days" in node:
        since = f" AND e.created_at >= {b.cutoff(node['within_days'])}"
    test = (
        "c.email IN (SELECT e.address FROM bounce_events e "
        f"WHERE e.company_id = {b.company} AND e.kind = 'complained'{since})"
    )
    return test if node["complained"] is not False else f"(NOT {test})"
