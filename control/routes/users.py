"""The company's users: `/api/users/` (permission `users:*`, admins by default).

Passwords are set here (argon2id), never returned; deactivating or deleting a user, or
changing their role or password, ends their sessions. A company always keeps one active
admin: the last one cannot be demoted, deactivated or deleted.
"""

from __future__ import annotations

from typing import Any

from control.auth import check_password_strength, hash_password
from control.errors import Conflict, NotFound, ValidationFailed
from control.fields import Field, Schema, ro
from control.permissions import ROLES, Action, permission
from control.routing import Api, Call, Page
from mta.queries import Queries

SQL = Queries("control")
ROLE_NAMES = tuple(ROLES)

USER = Schema(
    "User",
    (
        ro("id", "id"),
        Field("email", "email", required=True),
        Field("full_name", max_length=200, default=""),
        Field("role", required=True, enum=ROLE_NAMES),
        Field("is_active", "boolean", default=True),
        ro("totp_enabled", "boolean"),
        ro("last_login_at", "datetime", nullable=True),
        ro("created_at", "datetime"),
        ro("updated_at", "datetime"),
    ),
)
NEW_USER = Schema(
    "NewUser",
    (*USER.fields, Field("password", required=True, min_length=12, max_length=1024)),
)
USER_UPDATE = Schema(
    "UserUpdate",
    (
        Field("full_name", max_length=200),
        Field("role", enum=ROLE_NAMES),
        Field("is_active", "boolean"),
        Field("password", min_length=12, max_length=1024),
    ),
)
FILTERS = (Field("role", enum=ROLE_NAMES), Field("is_active", "boolean"), Field("search"))


def out(row: Any) -> dict[str, Any]:
    return {f.name: row[f.name] for f in USER.fields}


api = Api()


@api.add(
    "GET",
    "/api/users/",
    "List users",
    "users",
    permission=permission("users", Action.READ),
    query=FILTERS,
    response=USER,
    paginated=True,
)
async def list_users(call: Call) -> Page:
    limit, offset = call.limit_offset
    q = call.query
    rows = await call.db.fetch(
        SQL["list-user"], call.company_id, q["role"], q["is_active"], q["search"], limit, offset
    )
    page = call.page(rows)
    page.rows = [out(r) for r in page.rows]
    return page


@api.add(
    "GET",
    "/api/users/{id}/",
    "Get a user",
    "users",
    permission=permission("users", Action.READ),
    response=USER,
)
async def get_user(call: Call) -> dict[str, Any]:
    row = await call.db.fetchrow(SQL["get-user"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("user")
    return out(row)


@api.add(
    "POST",
    "/api/users/",
    "Create a user",
    "users",
    permission=permission("users", Action.CREATE),
    body=NEW_USER,
    response=USER,
    status=201,
)
async def create_user(call: Call) -> dict[str, Any]:
    data = dict(call.body or {})
    if not data["email"].isascii():
        # logins compare ASCII addresses only (control.auth.login_address)
        raise ValidationFailed({"email": "a login address must be ASCII"})
    password = data.pop("password")
    check_password_strength(password)
    row = await call.db.fetchrow(
        SQL["insert-user-record"],
        call.company_id,
        data,
        await hash_password(password, call.services.auth.hasher),
    )
    call.audit("user.create", "user", row["id"], None, out(row))
    return out(row)


async def _keep_an_admin(call: Call, current: Any) -> None:
    if current["role"] == "admin" and current["is_active"]:
        others = await call.db.fetchval(SQL["count-admins"], call.company_id, current["id"])
        if not others:
            raise Conflict("the company's last active admin cannot be removed or demoted")


@api.add(
    "PUT",
    "/api/users/{id}/",
    "Update a user (role, name, active, password)",
    "users",
    permission=permission("users", Action.UPDATE),
    changes_principals=True,
    body=USER_UPDATE,
    partial=True,
    response=USER,
)
async def update_user(call: Call) -> dict[str, Any]:
    current = await call.db.fetchrow(SQL["lock-user"], call.ids["id"], call.company_id)
    if current is None:
        raise NotFound("user")
    data = dict(call.body or {})
    if not data.get("email", "").isascii():
        raise ValidationFailed({"email": "a login address must be ASCII"})
    password = data.pop("password", None)
    demoted = data.get("role", "admin") != "admin" or data.get("is_active") is False
    if demoted:
        await _keep_an_admin(call, current)
    row = await call.db.fetchrow(SQL["update-user"], current["id"], call.company_id, data)
    if password is not None:
        check_password_strength(password)
        await call.db.execute(
            SQL["set-password"],
            current["id"],
            call.company_id,
            await hash_password(password, call.services.auth.hasher),
        )
    changed_access = (
        password is not None
        or row["role"] != current["role"]
        or row["is_active"] != current["is_active"]
    )
    if changed_access:
        await call.db.execute(SQL["revoke-user-sessions"], current["id"], "user_changed")
    after = {**out(row), **({"password_changed": True} if password is not None else {})}
    call.audit("user.update", "user", row["id"], out(current), after)
    return out(row)


@api.add(
    "DELETE",
    "/api/users/{id}/",
    "Delete a user (soft; sessions end)",
    "users",
    permission=permission("users", Action.DELETE),
    changes_principals=True,
    status=204,
)
async def delete_user(call: Call) -> None:
    current = await call.db.fetchrow(SQL["lock-user"], call.ids["id"], call.company_id)
    if current is None:
        raise NotFound("user")
    await _keep_an_admin(call, current)
    await call.db.execute(SQL["delete-user"], current["id"], call.company_id)
    await call.db.execute(SQL["revoke-user-sessions"], current["id"], "user_deleted")
    call.audit("user.delete", "user", current["id"], out(current), None)
