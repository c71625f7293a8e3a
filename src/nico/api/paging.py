"""`pageNumber` / `pageSize` / `orderBy` and the `X-Pagination` header, for every list."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Query, Response
from pydantic import WithJsonSchema

from nico.errors import ValidationFailed

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Keeps the SQL offset ((pageNumber - 1) * pageSize) inside every database's integer.
MAX_PAGE_NUMBER = 2**31 - 1
_ORDER_BY = re.compile(r"^([A-Z0-9_]+)_(ASC|DESC)$")
PAGING_FAILED = "Failed to validate pagination request data"
# Upstream's answer when pageNumber/pageSize is not a number at all (the bind failed).
PAGING_UNPARSEABLE = "Failed to parse request pagination data"
PAGING_NUMBERS = ("pageNumber", "pageSize")


@dataclass(frozen=True)
class OrderBy:
    field: str
    descending: bool
    raw: str


@dataclass(frozen=True)
class PageRequest:
    """Validated paging: 1-based page, size 1..100, optional raw `orderBy`."""

    page_number: int
    page_size: int
    order_by_raw: str | None

    @property
    def offset(self) -> int:
        return (self.page_number - 1) * self.page_size

    @property
    def limit(self) -> int:
        return self.page_size

    def order_by(self, allowed: tuple[str, ...]) -> OrderBy | None:
        """Parse `FIELD_ASC|FIELD_DESC` against the endpoint's allowed fields (lower-case)."""
        if self.order_by_raw is None:
            return None
        match = _ORDER_BY.match(self.order_by_raw)
        if match is None:
            raise ValidationFailed(
                PAGING_FAILED, [("orderBy", "must be in the format of FIELD_ASC or FIELD_DESC")]
            )
        field = match.group(1).lower()
        if field not in allowed:
            choices = " ".join(f.upper() for f in allowed) if allowed else "none"
            raise ValidationFailed(
                PAGING_FAILED,
                [("orderBy", f"orderBy field {match.group(1)} is not valid; allowed: {choices}")],
            )
        return OrderBy(field=field, descending=match.group(2) == "DESC", raw=self.order_by_raw)


# Published as seed 000 declares them (integers, pageNumber defaulting to 1) with the
# bounds the handler enforces; absent is the default, so null is not offered.
PageNumberQuery = Annotated[
    int | None,
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_NUMBER}),
    Query(description="Page number for pagination query (1..2147483647)"),
]
PageSizeQuery = Annotated[
    int | None,
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}),
    Query(description="Page size for pagination query (1..100, default 20)"),
]


async def page_request(
    pageNumber: PageNumberQuery = 1,
    pageSize: PageSizeQuery = None,
) -> PageRequest:
    """Dependency for lists that take no `orderBy`."""
    return _validated(pageNumber, pageSize, None)


async def page_request_ordered(
    pageNumber: PageNumberQuery = 1,
    pageSize: PageSizeQuery = None,
    orderBy: Annotated[str | None, Query(description="Ordering as FIELD_ASC or FIELD_DESC")] = None,
) -> PageRequest:
    """Dependency for lists that accept `orderBy` (validated by the endpoint's field list)."""
    return _validated(pageNumber, pageSize, orderBy)


def _validated(number: int | None, size: int | None, order_by: str | None) -> PageRequest:
    errors: list[tuple[str, str]] = []
    if number is not None and number < 1:
        errors.append(("pageNumber", "must be greater than 0"))
    elif number is not None and number > MAX_PAGE_NUMBER:
        errors.append(("pageNumber", f"must be less than or equal to {MAX_PAGE_NUMBER}"))
    if size is not None and size < 1:
        errors.append(("pageSize", "must be greater than 0"))
    elif size is not None and size > MAX_PAGE_SIZE:
        errors.append(("pageSize", f"must be less than or equal to {MAX_PAGE_SIZE}"))
    if errors:
        raise ValidationFailed(PAGING_FAILED, errors)
    return PageRequest(
        page_number=number or 1, page_size=size or DEFAULT_PAGE_SIZE, order_by_raw=order_by
    )


def set_pagination_header(response: Response, page: PageRequest, total: int) -> None:
    """`X-Pagination: {"pageNumber":..,"pageSize":..,"total":..,"orderBy":..|null}`."""
    response.headers["X-Pagination"] = json.dumps(
        {
            "pageNumber": page.page_number,
            "pageSize": page.page_size,
            "total": total,
            "orderBy": page.order_by_raw,
        },
        separators=(",", ":"),
    )
