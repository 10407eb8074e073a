"""Schemathesis against the running control API's own `/api/openapi.json`: for every operation,
generated requests made with an admin's token get no 5xx, and every answer (status, content
type, headers, body) is one the document declares.

The app runs under uvicorn in the test's event loop (tests/fixtures_control.py); Schemathesis'
requests-based client runs in a worker thread so the server keeps serving. Each operation gets
valid and invalid requests (Schemathesis' positive and negative modes), with generated path
ids (mostly another company's or nobody's: 404) and with the ids of real rows of the admin's
company, so handlers run past their lookups. Examples are few and derandomized so the suite
stays fast and repeatable; every finding of a group is reported at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.fixtures_control import PASSWORD, MakeControl, User

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Valid requests, and requests that break the document (wrong types, missing fields...).
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
EXAMPLES = 6  # per operation and id source; ~70 operations
# Operations that end the caller's session: they get a token of their own each time.
SESSION_ENDING = frozenset({"logout"})
# Operations grouped so each test runs a few at a time (tags of the document).
GROUPS = {
    "auth-users-settings": ("auth", "users", "settings", "audit", "analytics"),
    "templates-senders": ("templates", "sender profiles"),
    "lists-contacts": ("lists", "contacts"),
    "campaigns-workflows": ("campaigns", "workflows"),
    "sending-domains": ("sending domains",),
}


def _known_ids(fixtures: dict[str, int], others: dict[str, int]) -> dict[str, dict[str, int]]:
    """Real ids of the admin's company, by path prefix, for the path parameters."""
    ids = {**fixtures, **others}
    return {
        "/api/users/": {"id": ids["user"]},
        "/api/api-keys/": {"id": ids["api_key"]},
        "/api/sender-profiles/": {"id": ids["sender"]},
        "/api/email-templates/": {"id": ids["template"]},
        "/api/email-lists/": {"id": ids["list"], "contact_id": ids["contact"]},
        # a contact of its own for erasure, which deletes it
        "/api/contacts/{id}/erase/": {"id": ids["erasable"]},
        "/api/contacts/": {"id": ids["contact"]},
        "/api/imports/": {"id": ids["import"]},
        "/api/email-campaigns/": {"id": ids["campaign"]},
        "/api/email-workflows/": {"id": ids["workflow"]},
        "/api/sending-domains/": {"id": ids["domain"]},
    }


def _ids_key(known: dict[str, dict[str, int]], path: str) -> str | None:
    """The entry of `known` for `path`: its own, else the first that prefixes it."""
    if path in known:
        return path
    return next((p for p in known if path.startswith(p)), None)


def _exercise(
    url: str, tags: tuple[str, ...], admin: User, known: dict[str, dict[str, int]]
) -> tuple[set[str], set[str], list[str]]:
    """Runs the property over the operations tagged `tags`: (operations, those that got
    requests, findings)."""
    schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json").include(tag=list(tags))
    http = requests.Session()
    ran: set[str] = set()
    failures: list[str] = []

    def fresh_token() -> str:
        r = http.post(f"{url}/api/auth/login", json={"email": admin.email, "password": PASSWORD})
        r.raise_for_status()
        return r.json()["access_token"]

    operations = [result.ok() for result in schema.get_all_operations()]
    # Deletions last, so the rows the other operations are given ids of still exist.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    for operation in operations:
        strategies = [operation.as_strategy(mode) for mode in MODES]
        prefix = _ids_key(known, operation.path)
        if prefix is not None and operation.path_parameters:
            wanted = {p.name for p in operation.path_parameters}
            ids = {k: v for k, v in known[prefix].items() if k in wanted}
            strategies += [operation.as_strategy(mode, path_parameters=ids) for mode in MODES]
        strategy = st.one_of(strategies)
        if operation.path.startswith("/api/users/{id}"):
            # The caller demoting or deleting itself is allowed, and would leave only 401s.
            strategy = strategy.filter(lambda c: c.path_parameters.get("id") != admin.id)

        @settings(
            max_examples=EXAMPLES * len(strategies),
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: schemathesis.Case) -> None:
            ran.add(case.operation.label)
            own = (
                fresh_token()
                if case.operation.definition.raw.get("operationId") in SESSION_ENDING
                else admin.tokens["access_token"]
            )
            case.call_and_validate(
                base_url=url,
                session=http,
                headers={"Authorization": f"Bearer {own}"},
                checks=CHECKS,
                timeout=10,
            )

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs; all are reported
            failures.append(f"{operation.label}: {exc}")
    http.close()
    return {op.label for op in operations}, ran, failures


async def _setup(make_control: MakeControl) -> tuple[Any, Any, dict[str, dict[str, int]]]:
    # Limits high enough that generated traffic is not throttled away (429 is documented,
    # but would hide every handler behind it).
    control = await make_control(
        rate_limit="1000000/m",
        rate_burst=100000,
        login_max_failures=100000,
        login_max_failures_per_address=100000,
        login_max_failures_per_account=100000,
        # DNS checks of sending domains fail fast (nothing listens there) instead of waiting
        # on the machine's resolver.
        config={"dns": {"resolvers": ["127.0.0.1:9"], "timeout": "0.2s"}},
    )
    company = await control.company()
    admin = await control.user(company, "admin")
    fixtures = await control.fixtures(admin)
    other = await control.user(company, "analyst", login=False)
    c = control.client
    key = await c.post(
        "/api/api-keys/", headers=admin.auth, json={"name": "ci", "permissions": ["lists:read"]}
    )
    assert key.status_code == 201, key.text
    imported = await c.post(
        f"/api/email-lists/{fixtures['list']}/imports/",
        headers={**admin.auth, "Content-Type": "text/csv"},
        content=b"email,first_name\nann@example.org,Ann\nnot-an-address,Bob\n",
    )
    assert imported.status_code in (200, 201, 202), imported.text
    erasable = await c.post("/api/contacts/", headers=admin.auth, json={"email": "eve@example.org"})
    assert erasable.status_code == 201, erasable.text
    domain = await c.post(
        "/api/sending-domains/", headers=admin.auth, json={"domain": "mail.schema.test"}
    )
    assert domain.status_code == 201, domain.text
    others = {
        "domain": domain.json()["id"],
        "erasable": erasable.json()["id"],
        "user": other.id,
        "api_key": key.json()["id"],
        "import": imported.json()["id"],
    }
    return control, admin, _known_ids(fixtures, others)


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(GROUPS))
async def test_generated_requests_get_no_server_error_and_match_the_schema(
    make_control: MakeControl, group: str
) -> None:
    control, admin, known = await _setup(make_control)
    tags = GROUPS[group]
    operations, ran, failures = await asyncio.to_thread(_exercise, control.url, tags, admin, known)
    assert not failures, "\n\n".join(failures)
    assert operations and ran == operations


async def test_every_operation_is_in_a_group(make_control: MakeControl) -> None:
    control = await make_control()
    document = (await control.client.get("/api/openapi.json")).json()
    tags = {op["tags"][0] for ops in document["paths"].values() for op in ops.values()}
    grouped = {t for g in GROUPS.values() for t in g}
    assert tags <= grouped, f"operations tagged {sorted(tags - grouped)} are not exercised"
