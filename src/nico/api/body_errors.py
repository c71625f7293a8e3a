"""Per-endpoint summaries for body validation failures, as upstream words them.

An endpoint decorated with `@validation_summary("Failed to validate power control request
data")` and routed through `SummarizedRoute` answers a bad body with that summary and a
`data` map naming every field, instead of the generic wording.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from nico.api.errors import field_problem
from nico.errors import ValidationFailed

F = TypeVar("F", bound=Callable[..., Any])
_ATTRIBUTE = "__nico_validation_summary__"


def validation_summary(summary: str) -> Callable[[F], F]:
    """Mark an endpoint with the summary its body validation failures carry."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, summary)
        return endpoint

    return mark


def body_errors(errors: Sequence[Any]) -> list[tuple[str, str]] | None:
    """(field path, message) per error, or None when any error is not about the body."""
    out: list[tuple[str, str]] = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if not loc or loc[0] != "body" or error.get("type") == "json_invalid":
            return None
        out.append(field_problem(error))
    return out


class SummarizedRoute(APIRoute):
    """An APIRoute whose body validation errors carry the endpoint's summary."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        summary: str | None = getattr(self.endpoint, _ATTRIBUTE, None)
        if summary is None:
            return handler

        async def summarized(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = body_errors(exc.errors())
                if errors is None:
                    raise
                raise ValidationFailed(summary, errors) from None

        return summarized
