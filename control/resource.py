"""The five operations every resource has — list, get, create, update, soft delete — declared
once. A resource names its SQL (`list-<x>`, `get-<x>`, `lock-<x>`, `insert-<x>`,
`update-<x>`, `delete-<x>` in control/sql/, written out in full in CRUD_QUERIES below so that
grep finds every use) and supplies hooks for its own rules (references, content checks,
"in use" refusals, masking).

Every query takes the caller's company: a row of another company is simply not found (404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from control.errors import NotFound
from control.fields import Field, Schema
from control.permissions import Action, permission
from control.routing import Api, Call, Page
from mta.queries import Queries

SQL = Queries("control")

Hook = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class CrudQueries:
    """The SQL of one resource's operations."""

    list: str
    get: str
    lock: str
    insert: str
    update: str
    delete: str


CRUD_QUERIES = {
    "campaign": CrudQueries(
        SQL["list-campaign"],
        SQL["get-campaign"],
        SQL["lock-campaign"],
        SQL["insert-campaign"],
        SQL["update-campaign"],
        SQL["delete-campaign"],
    ),
    "contact": CrudQueries(
        SQL["list-contact"],
        SQL["get-contact"],
        SQL["lock-contact"],
        SQL["insert-contact"],
        SQL["update-contact"],
        SQL["delete-contact"],
    ),
    "list": CrudQueries(
        SQL["list-list"],
        SQL["get-list"],
        SQL["lock-list"],
        SQL["insert-list"],
        SQL["update-list"],
        SQL["delete-list"],
    ),
    "sender": CrudQueries(
        SQL["list-sender"],
        SQL["get-sender"],
        SQL["lock-sender"],
        SQL["insert-sender"],
        SQL["update-sender"],
        SQL["delete-sender"],
    ),
    "template": CrudQueries(
        SQL["list-template"],
        SQL["get-template"],
        SQL["lock-template"],
        SQL["insert-template"],
        SQL["update-template"],
        SQL["delete-template"],
    ),
    "workflow": CrudQueries(
        SQL["list-workflow"],
        SQL["get-workflow"],
        SQL["lock-workflow"],
        SQL["insert-workflow"],
        SQL["update-workflow"],
        SQL["delete-workflow"],
    ),
}


async def _no_hook(*_: Any) -> None:
    return None


@dataclass
class ResourceSpec:
    name: str  # audit/event noun: "email_template"
    sql: str  # key of CRUD_QUERIES: "template"
    path: str  # "/api/email-templates/"
    tag: str
    perm: str  # matrix resource: "templates"
    schema: Schema  # input fields (writable) and output fields (read-only)
    filters: tuple[Field, ...] = ()
    title: str = ""
    # async hooks, each (call, ...) -> None; may raise ControlError subclasses
    before_list: Hook = _no_hook  # (call)
    before_create: Hook = _no_hook  # (call, data)
    before_update: Hook = _no_hook  # (call, data, current)
    before_delete: Hook = _no_hook  # (call, current)
    after_write: Hook = _no_hook  # (call, action, row)
    serialize: Callable[[Call, Any], dict[str, Any]] | None = None
    # GET of one item: extra query parameters, a richer response, and the hook that adds to
    # it (campaigns: ?include_analytics=true)
    get_query: tuple[Field, ...] = ()
    get_response: Schema | None = None
    after_get: Callable[[Call, Any, dict[str, Any]], Awaitable[None]] | None = None
    # what the audit log keeps of a row; contacts keep no personal data there, since the
    # append-only log could not honour an erasure
    audit_view: Callable[[Any], dict[str, Any]] | None = None

    def audited(self, call: Call, row: Any) -> dict[str, Any]:
        return self.audit_view(row) if self.audit_view is not None else self.out(call, row)

    def out(self, call: Call, row: Any) -> dict[str, Any]:
        if self.serialize is not None:
            return self.serialize(call, row)
        return {f.name: row[f.name] for f in self.schema.fields}


def register(api: Api, spec: ResourceSpec) -> None:
    """Declare list/get/create/update/delete for `spec` on `api`."""
    title = spec.title or spec.name.replace("_", " ")
    sql = CRUD_QUERIES[spec.sql]
    item = spec.path + "{id}/"

    async def list_items(call: Call) -> Page:
        await spec.before_list(call)
        limit, offset = call.limit_offset
        values = [call.query[f.name] for f in spec.filters]
        rows = await call.db.fetch(sql.list, call.company_id, *values, limit, offset)
        page = call.page(rows)
        page.rows = [spec.out(call, r) for r in page.rows]
        return page

    async def get_item(call: Call) -> dict[str, Any]:
        row = await call.db.fetchrow(sql.get, call.ids["id"], call.company_id)
        if row is None:
            raise NotFound(title)
        result = spec.out(call, row)
        if spec.after_get is not None:
            await spec.after_get(call, row, result)
        return result

    async def create_item(call: Call) -> dict[str, Any]:
        data = dict(call.body or {})
        await spec.before_create(call, data)
        row = await call.db.fetchrow(sql.insert, call.company_id, call.user_id, data)
        result = spec.out(call, row)
        call.audit(f"{spec.name}.create", spec.name, row["id"], None, spec.audited(call, row))
        await spec.after_write(call, "create", row)
        return result

    async def update_item(call: Call) -> dict[str, Any]:
        current = await call.db.fetchrow(sql.lock, call.ids["id"], call.company_id)
        if current is None:
            raise NotFound(title)
        data = dict(call.body or {})
        await spec.before_update(call, data, current)
        row = await call.db.fetchrow(
            sql.update, call.ids["id"], call.company_id, call.user_id, data
        )
        result = spec.out(call, row)
        call.audit(
            f"{spec.name}.update",
            spec.name,
            row["id"],
            spec.audited(call, current),
            spec.audited(call, row),
        )
        await spec.after_write(call, "update", row)
        return result

    async def delete_item(call: Call) -> None:
        current = await call.db.fetchrow(sql.lock, call.ids["id"], call.company_id)
        if current is None:
            raise NotFound(title)
        await spec.before_delete(call, current)
        row = await call.db.fetchrow(sql.delete, call.ids["id"], call.company_id)
        call.audit(f"{spec.name}.delete", spec.name, row["id"], spec.audited(call, current), None)
        await spec.after_write(call, "delete", row)

    for fn, verb in (
        (list_items, "list"),
        (get_item, "get"),
        (create_item, "create"),
        (update_item, "update"),
        (delete_item, "delete"),
    ):
        fn.__name__ = f"{verb}_{spec.name}"
    perm = spec.perm
    api.add(
        "GET",
        spec.path,
        f"List {title}s",
        spec.tag,
        permission=permission(perm, Action.READ),
        query=spec.filters,
        response=spec.schema,
        paginated=True,
    )(list_items)
    api.add(
        "POST",
        spec.path,
        f"Create a {title}",
        spec.tag,
        permission=permission(perm, Action.CREATE),
        body=spec.schema,
        response=spec.schema,
        status=201,
    )(create_item)
    api.add(
        "GET",
        item,
        f"Get a {title}",
        spec.tag,
        permission=permission(perm, Action.READ),
        query=spec.get_query,
        response=spec.get_response or spec.schema,
    )(get_item)
    for method in ("PUT", "PATCH"):
        api.add(
            method,
            item,
            f"Update a {title} (only the fields given change)",
            spec.tag,
            permission=permission(perm, Action.UPDATE),
            body=spec.schema,
            partial=True,
            response=spec.schema,
        )(update_item)
    api.add(
        "DELETE",
        item,
        f"Delete a {title} (soft: history is kept)",
        spec.tag,
        permission=permission(perm, Action.DELETE),
        status=204,
    )(delete_item)
