"""JSON responses in the API's conventions: ISO 8601 UTC date-times (`2026-05-01T09:00:00Z`),
times of day as HH:MM, addresses and UUIDs as strings."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse

# orjson writes aware datetimes in UTC as `...Z` without microseconds, the API's format;
# what it does not know (addresses, decimals, bytes) goes through `to_json`.
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS | orjson.OPT_NAIVE_UTC


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value.network_address)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(content: Any) -> bytes:
    """Compact UTF-8 JSON in the API's conventions (orjson: a tenth of the stdlib's cost)."""
    return orjson.dumps(content, default=to_json, option=_OPTIONS)


class ApiJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
