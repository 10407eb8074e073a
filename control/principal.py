"""Who is calling: a user (through an access token) or an application (through an API key).

Every request the control API serves is made on behalf of one `Principal`; its company scopes
every query and its permissions gate every route.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from control.permissions import CONTACT_PII


@dataclass(frozen=True, slots=True)
class Principal:
    company_id: int
    permissions: frozenset[str]
    user_id: int | None = None  # the user, or the API key's creator
    api_key_id: int | None = None  # set when an API key is acting
    role: str | None = None
    mfa: bool = False  # TOTP verified in this session
    session_id: UUID | None = None

    @property
    def rate_key(self) -> str:
        """What a rate limit counts against: each API key separately from its creator."""
        return f"key:{self.api_key_id}" if self.api_key_id else f"user:{self.user_id}"

    @property
    def acting_user_id(self) -> int | None:
        """The user recorded as creator/updater of what this principal writes."""
        return self.user_id

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def sees_pii(self) -> bool:
        return CONTACT_PII in self.permissions
