"""Roles and permissions: the matrix in `permissions.toml`, loaded once.

A permission is `"<resource>:<action>"`, e.g. `"campaigns:send"`. Roles map to sets of them;
API keys carry an explicit subset of their creator's.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from importlib import resources


class Action(StrEnum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    SEND = "send"
    APPROVE = "approve"


class Resource(StrEnum):
    CAMPAIGNS = "campaigns"
    TEMPLATES = "templates"
    LISTS = "lists"
    WORKFLOWS = "workflows"
    ANALYTICS = "analytics"
    SETTINGS = "settings"
    USERS = "users"
    AUDIT = "audit"


# Outside the action matrix: seeing (and exporting, erasing) contacts' personal data.
CONTACT_PII = "contacts:pii"


def permission(resource: Resource | str, action: Action | str) -> str:
    return f"{resource}:{action}"


def _load() -> dict[str, frozenset[str]]:
    text = (resources.files("control") / "permissions.toml").read_text()
    roles: dict[str, frozenset[str]] = {}
    valid = {permission(r, a) for r in Resource for a in Action} | {CONTACT_PII}
    for role, grants in tomllib.loads(text)["roles"].items():
        perms = frozenset(f"{res}:{act}" for res, acts in grants.items() for act in acts)
        unknown = perms - valid
        if unknown:
            raise ValueError(f"permissions.toml: role {role}: unknown {sorted(unknown)}")
        roles[role] = perms
    return roles


ROLES: dict[str, frozenset[str]] = _load()
ALL_PERMISSIONS: frozenset[str] = frozenset().union(*ROLES.values())


def role_permissions(role: str) -> frozenset[str]:
    """The permissions of `role`; an unknown role (removed from the matrix) has none."""
    return ROLES.get(role, frozenset())
