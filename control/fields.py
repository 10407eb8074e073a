"""Declared request and response shapes: one `Schema` per resource validates input, fills
defaults and is the source of the OpenAPI document, so the docs cannot drift from the code.

Validation collects every problem before answering: a client gets all its mistakes in one
422 (`details.fields` maps each field to a reason), never a 500 for hostile input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from control.errors import ValidationFailed

MISSING: Any = object()
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

_JSON_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "text": {"type": "string"},
    "email": {"type": "string", "format": "email"},
    "integer": {"type": "integer"},
    "id": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "time": {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"},
    "object": {"type": "object"},
    "array": {"type": "array"},
}
# RFC 5321 limits: 64 octets of local part, 254 in all (RFC 3696 erratum 1690).
_EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\\\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
)


@dataclass(frozen=True, slots=True)
class Field:
    """One field: its JSON type and constraints. `read_only` fields appear in responses only."""

    name: str
    type: str = "string"
    required: bool = False
    nullable: bool = False
    max_length: int | None = None
    min_length: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    items: str | None = None  # type of array items
    default: Any = MISSING
    read_only: bool = False
    description: str = ""
    # responses: the shape of an "object" field, or of an "array" field's items
    shape: Schema | None = None
    # responses: present only when the request asked for it (e.g. ?include_analytics=true)
    optional: bool = False

    def openapi(self) -> dict[str, Any]:
        spec: dict[str, Any] = dict(_JSON_TYPES[self.type])
        if self.max_length is not None:
            spec["maxLength"] = self.max_length
        if self.min_length is not None:
            spec["minLength"] = self.min_length
        if self.pattern is not None:
            spec["pattern"] = self.pattern
        if self.enum is not None:
            spec["enum"] = list(self.enum)
        if self.type == "integer":
            spec["minimum"] = self.minimum if self.minimum is not None else -INT32_MAX
            spec["maximum"] = self.maximum if self.maximum is not None else INT32_MAX
        if self.items:
            spec["items"] = dict(_JSON_TYPES[self.items])
            if self.enum is not None:
                spec["items"]["enum"] = spec.pop("enum")
        if self.shape is not None:
            if self.type == "array":
                spec["items"] = self.shape.openapi()
            else:
                spec.update(self.shape.openapi())
        if self.nullable:
            spec["nullable"] = True
        if self.read_only:
            spec["readOnly"] = True
        if self.default is not MISSING and not callable(self.default):
            spec["default"] = self.default
        if self.description:
            spec["description"] = self.description
        return spec

    def clean(self, value: Any) -> Any:
        """The validated value, or ValueError with the reason."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError("must not be null")
        kind = self.type
        if kind in ("string", "text", "email", "time"):
            if not isinstance(value, str):
                raise ValueError("must be a string")
            if "\x00" in value:
                raise ValueError("must not contain NUL characters")
            if kind == "email":
                value = value.strip().lower()
                if not _EMAIL.match(value) or len(value) > 254:
                    raise ValueError("must be an email address")
            if kind == "time":
                if not re.fullmatch(_JSON_TYPES["time"]["pattern"].strip("^$"), value):
                    raise ValueError("must be a time of day HH:MM")
                return time.fromisoformat(value)
            if self.min_length is not None and len(value) < self.min_length:
                raise ValueError(f"must be at least {self.min_length} characters")
            if self.max_length is not None and len(value) > self.max_length:
                raise ValueError(f"must be at most {self.max_length} characters")
            if self.pattern is not None and not re.fullmatch(self.pattern.strip("^$"), value):
                raise ValueError(f"must match {self.pattern}")
            if self.enum is not None and value not in self.enum:
                raise ValueError(f"must be one of {', '.join(self.enum)}")
            return value
        if kind in ("integer", "id"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("must be an integer")
            low = 1 if kind == "id" else (self.minimum if self.minimum is not None else -INT32_MAX)
            high = INT64_MAX if kind == "id" else (self.maximum or INT32_MAX)
            if not low <= value <= high:
                raise ValueError(f"must be between {low} and {high}")
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("must be a number")
            if not math.isfinite(value):
                raise ValueError("must be finite")
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if kind == "datetime":
            return parse_datetime(value)
        if kind == "object":
            if not isinstance(value, dict):
                raise ValueError("must be an object")
            _check_json(value)
            return value
        if kind == "array":
            if not isinstance(value, list):
                raise ValueError("must be an array")
            if self.items:
                item = Field(self.name, self.items, enum=self.enum)
                return [item.clean(v) for v in value]
            _check_json(value)
            return value
        raise AssertionError(kind)


def parse_datetime(value: Any) -> datetime:
    """ISO 8601 with a time zone (`2026-05-01T09:00:00Z`), as an aware UTC datetime."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time like 2026-05-01T09:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("must include a time zone (Z or +hh:mm)")
    if not 1900 <= parsed.year <= 9999:
        raise ValueError("year out of range")
    return parsed.astimezone(UTC)


def _check_json(value: Any) -> None:
    # PostgreSQL's jsonb refuses \u0000 in strings; refuse it here with a clear reason.
    if "\\u0000" in json.dumps(value):
        raise ValueError("must not contain NUL characters")


@dataclass(frozen=True)
class Schema:
    """A resource's shape: `validate` cleans a request body, `openapi` describes it."""

    name: str
    fields: tuple[Field, ...]
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    def validate(self, data: Any, *, partial: bool = False) -> dict[str, Any]:
        """Cleaned input. `partial` (updates): only the fields given; nothing is required."""
        if not isinstance(data, dict):
            raise ValidationFailed({"body": "must be a JSON object"})
        errors: dict[str, str] = {}
        out: dict[str, Any] = {}
        for name, value in data.items():
            spec = self.by_name.get(name)
            if spec is None:
                errors[name] = "unknown field"
            elif spec.read_only:
                continue  # echoed back from a GET: ignored, never written
            else:
                try:
                    out[name] = spec.clean(value)
                except ValueError as exc:
                    errors[name] = str(exc)
        if not partial:
            for spec in self.fields:
                if spec.read_only or spec.name in out or spec.name in errors:
                    continue
                if spec.required:
                    errors[spec.name] = "is required"
                elif spec.default is not MISSING:
                    out[spec.name] = spec.default() if callable(spec.default) else spec.default
        if errors:
            raise ValidationFailed(errors)
        return out

    def openapi(self, *, for_input: bool = False, partial: bool = False) -> dict[str, Any]:
        fields = [f for f in self.fields if not (for_input and f.read_only)]
        spec: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.openapi() for f in fields},
        }
        if for_input:
            spec["additionalProperties"] = False
        required = [f.name for f in fields if f.required and not partial]
        if not for_input:
            required = [f.name for f in fields if not f.optional]
        if required:
            spec["required"] = required
        return spec


def ro(name: str, type: str = "string", nullable: bool = False, **kw: Any) -> Field:
    """A read-only (response) field."""
    return Field(name, type, nullable=nullable, read_only=True, **kw)


def query_values(params: Mapping[str, str], fields: Iterable[Field]) -> dict[str, Any]:
    """Query-string filters, typed: `?is_active=true&page=2` -> {"is_active": True, "page": 2}."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in fields:
        raw = params.get(spec.name)
        if raw is None or raw == "":
            out[spec.name] = spec.default if spec.default is not MISSING else None
            continue
        try:
            if spec.type in ("integer", "id"):
                if not re.fullmatch(r"-?\d{1,19}", raw):
                    raise ValueError("must be an integer")
                out[spec.name] = spec.clean(int(raw))
            elif spec.type == "boolean":
                if raw not in ("true", "false", "1", "0"):
                    raise ValueError("must be true or false")
                out[spec.name] = raw in ("true", "1")
            else:
                out[spec.name] = spec.clean(raw)
        except ValueError as exc:
            errors[spec.name] = str(exc)
    if errors:
        raise ValidationFailed(errors)
    return out
