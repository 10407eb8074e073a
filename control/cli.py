"""`sendmill control ...`: bootstrap tenants and users from the shell (the first admin cannot
be created through the API, which needs an admin).

    sendmill control create-company NAME [--code-prefix EC]
    sendmill control create-admin --company NAME --email ADDRESS [--password-stdin]
    sendmill control create-user --company NAME --email ADDRESS --role ROLE [--password-stdin]

Without --password-stdin a strong password is generated and printed once.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Callable
from typing import Any

from control.permissions import ROLES

AddConfig = Callable[[argparse.ArgumentParser], None]


async def _run(config_path: str | None, work: Callable[[Any, Any], Any]) -> Any:
    from control.auth import password_hasher
    from mta import database
    from mta.config import load_config

    config = load_config(config_path)
    hasher = password_hasher(config.control.password_time_cost, config.control.password_memory_kib)
    pool = await database.open_pool(config, size=2)
    try:
        return await work(pool, hasher)
    finally:
        await pool.close()


async def create_company(db: Any, name: str, code_prefix: str | None = None) -> int:
    """Company `name` (created when missing) with its control profile; returns its id."""
    from mta import tenants
    from mta.queries import Queries

    sql = Queries("control")
    company_id = await tenants.ensure_company(db, name)
    await db.execute(sql["ensure-profile"], company_id)
    if code_prefix:
        await db.execute(sql["update-profile"], company_id, {"code_prefix": code_prefix})
    return company_id


async def create_user(
    db: Any,
    company: str,
    email: str,
    role: str,
    password: str,
    full_name: str = "",
    hasher: Any = None,
) -> int:
    """A user of company `company` (which must exist); returns the user id."""
    from control.auth import DEFAULT_HASHER, check_password_strength, hash_password
    from control.fields import Field
    from mta import tenants
    from mta.queries import Queries

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    check_password_strength(password)
    email = Field("email", "email").clean(email)
    company_id = await tenants.company_by_name(db, company)
    if company_id is None:
        raise ValueError(f"no company named {company!r} (create it with create-company)")
    row = await db.fetchrow(
        Queries("control")["insert-user"],
        company_id,
        email,
        full_name,
        role,
        await hash_password(password, hasher or DEFAULT_HASHER),
    )
    return row["id"]


def cmd_create_company(args: argparse.Namespace) -> int:
    company_id = asyncio.run(
        _run(args.config, lambda db, _: create_company(db, args.name, args.code_prefix))
    )
    print(f"company {args.name} has id {company_id}")
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    from control.errors import ValidationFailed

    role = getattr(args, "role", None) or "admin"
    generated = not args.password_stdin
    password = secrets.token_urlsafe(18) if generated else sys.stdin.readline().rstrip("\n")
    try:
        user_id = asyncio.run(
            _run(
                args.config,
                lambda db, hasher: create_user(
                    db, args.company, args.email, role, password, args.name, hasher
                ),
            )
        )
    except (ValueError, ValidationFailed) as exc:
        print(f"sendmill: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    print(f"user {args.email} ({role}) has id {user_id}")
    if generated:
        print(f"password (shown once): {password}")
    return 0


def add_commands(sub: Any, add_config: AddConfig) -> None:
    """Add `control` and its subcommands to the `sendmill` parser."""
    control = sub.add_parser("control", help="control API: companies and users").add_subparsers(
        dest="control_command", required=True, metavar="COMMAND"
    )
    p = control.add_parser("create-company", help="create a company (tenant)")
    add_config(p)
    p.add_argument("name", help="company name")
    p.add_argument("--code-prefix", help="prefix of generated campaign codes (default EC)")
    p.set_defaults(func=cmd_create_company)
    for name, text, with_role in (
        ("create-admin", "create an admin user of a company", False),
        ("create-user", "create a user of a company with a role", True),
    ):
        p = control.add_parser(name, help=text)
        add_config(p)
        p.add_argument("--company", required=True, help="company name")
        p.add_argument("--email", required=True, help="login address")
        p.add_argument("--name", default="", help="full name")
        if with_role:
            p.add_argument(
                "--role", required=True, choices=sorted(ROLES), help="the user's role (RBAC)"
            )
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input (default: generate and print one)",
        )
        p.set_defaults(func=cmd_create_user)
