"""Parsing ids from requests: one place, so every layer names a bad id the same way."""

from __future__ import annotations

import uuid

NOT_A_UUID = "must be a valid UUID"
FieldErrors = list[tuple[str, str]]


def as_uuid(value: object) -> uuid.UUID | None:
    """`value` as a UUID, or None when it is not one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def optional_uuid(
    value: object, field: str, errors: FieldErrors, *, problem: str = NOT_A_UUID
) -> uuid.UUID | None:
    """None when absent; a malformed value adds `(field, problem)` to `errors`, so one
    400 can name every bad field."""
    if value is None:
        return None
    parsed = as_uuid(value)
    if parsed is None:
        errors.append((field, problem))
    return parsed
