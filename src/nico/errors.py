"""Typed domain errors. `nico.api.errors` maps them to NICo error responses in one place."""

from __future__ import annotations

from typing import Any


class NicoError(Exception):
    """An error with an HTTP status, a message an operator can act on, and optional data."""

    status_code = 500

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class BadRequest(NicoError):
    status_code = 400


class Unauthorized(NicoError):
    status_code = 401


class Forbidden(NicoError):
    status_code = 403


class NotFound(NicoError):
    status_code = 404


class Conflict(NicoError):
    status_code = 409


class PreconditionFailed(NicoError):
    status_code = 412


class ServiceUnavailable(NicoError):
    status_code = 503


def field_errors(errors: list[tuple[str, str]]) -> dict[str, str]:
    """Fold (field path, message) pairs into the `data` map; first message per field wins."""
    data: dict[str, str] = {}
    for path, message in errors:
        data.setdefault(path, message)
    return data


class ValidationFailed(BadRequest):
    """400 listing every problem by field path: `a.b: msg; c: msg`."""

    def __init__(self, summary: str, errors: list[tuple[str, str]]) -> None:
        detail = "; ".join(f"{path}: {message}" for path, message in errors)
        super().__init__(f"{summary}: {detail}" if detail else summary, field_errors(errors))
        self.errors = errors
