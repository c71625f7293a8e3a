"""Tray history: `GET /tray/{id}/history` and `GET /rack/{id}/history`, newest first.

Rows are observed changes of power state and firmware versions (the state sync's and
tasks' reads) and finished power/firmware steps of tasks, per tray (docs/state.md).
Paging is the task lists' (`pageNumber`, `pageSize`, `X-Pagination`); like task history,
tray history outlives inventory, so a deleted tray's or rack's id still lists its rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api.access import INVALID_RACK_ID, INVALID_TRAY_ID, parse_uuid, require_site
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.api.paging import PageRequest, page_request, set_pagination_header
from nico.errors import ValidationFailed
from nico.schemas.history import TrayHistoryEntry
from nico.services import Services
from nico.store.history import HistoryKind, HistoryQuery, list_history
from nico.store.models import TrayHistory

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)

LIST_FAILED = "Failed to validate request data"
KIND_VALUES = [k.value for k in HistoryKind]

SiteIdQuery = Annotated[
    str | None, Query(alias="siteId", description="ID of the Site the rack or tray belongs to.")
]
KindQuery = Annotated[
    str | None,
    Query(description="Only `power` or only `firmware` rows."),
    # Documented as the enum; parsed by `_filters` so a bad value is the NICo 400.
    WithJsonSchema({"anyOf": [{"type": "string", "enum": KIND_VALUES}, {"type": "null"}]}),
]
SinceQuery = Annotated[
    str | None,
    Query(description="Only rows at or after this RFC 3339 time (2026-12-03T08:00:00Z)."),
]
PageDep = Annotated[PageRequest, Depends(page_request)]
_HISTORY_LIST: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "History rows, newest first",
        "headers": {
            "X-Pagination": {
                "description": 'JSON {"pageNumber","pageSize","total","orderBy"}; total '
                "counts the rows left after filters.",
                "schema": {"type": "string"},
            }
        },
    }
}
OUTLIVES = (
    " History outlives inventory: the id of a deleted {kind} still lists its rows (an "
    "empty list when there are none) rather than 404; `siteId` must name a site of the "
    "caller's provider, and only that site's rows are listed."
)


def _utc_time(raw: str) -> datetime | None:
    """An aware time in UTC, or None when it is not one or falls outside the years
    1-9999 once in UTC (0001-01-01T00:00:00+05:00 would overflow the store's columns)."""
    try:
        parsed = datetime.fromisoformat(raw.strip())
        if parsed.tzinfo is None:
            return None
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _filters(kind: str | None, since: str | None) -> tuple[HistoryKind | None, datetime | None]:
    """`kind` and `since`, or one 400 naming each bad one."""
    errors: list[tuple[str, str]] = []
    parsed_kind: HistoryKind | None = None
    if kind is not None:
        try:
            parsed_kind = HistoryKind(kind.strip().lower())
        except ValueError:
            errors.append(("kind", f"must be one of [{' '.join(KIND_VALUES)}]"))
    parsed_since: datetime | None = None
    if since is not None:
        parsed_since = _utc_time(since)
        if parsed_since is None:
            errors.append(
                ("since", "must be an RFC 3339 time with a time zone, e.g. 2026-12-03T08:00:00Z")
            )
    if errors:
        raise ValidationFailed(LIST_FAILED, errors)
    return parsed_kind, parsed_since


async def _list(
    services: Services,
    org: str,
    site_id: str | None,
    page: PageRequest,
    query: HistoryQuery,
) -> JSONResponse:
    async def read(session: AsyncSession) -> tuple[list[TrayHistory], int]:
        site = await require_site(session, org, site_id)
        scoped = HistoryQuery(
            tray_id=query.tray_id,
            rack_id=query.rack_id,
            kind=query.kind,
            since=query.since,
            site_id=site.id,
        )
        return await list_history(session, scoped, offset=page.offset, limit=page.limit)

    rows, total = await services.db.read_session(read)
    response = JSONResponse(content=[TrayHistoryEntry.of(r).wire() for r in rows])
    set_pagination_header(response, page, total)
    return response


@router.get(
    "/tray/{id}/history",
    response_model=list[TrayHistoryEntry],
    responses=_HISTORY_LIST,
    summary="Retrieve the power and firmware history of a Tray",
    description="Observed power-state and firmware-version changes of the Tray and the "
    "finished power and firmware steps of tasks on it, newest first."
    + OUTLIVES.format(kind="tray"),
)
async def tray_history(
    org: str,
    id: str,
    services: ServicesDep,
    page: PageDep,
    site_id: SiteIdQuery = None,
    kind: KindQuery = None,
    since: SinceQuery = None,
) -> JSONResponse:
    tray_id: uuid.UUID = parse_uuid(id, INVALID_TRAY_ID, "id")
    wanted, after = _filters(kind, since)
    return await _list(
        services, org, site_id, page, HistoryQuery(tray_id=tray_id, kind=wanted, since=after)
    )


@router.get(
    "/rack/{id}/history",
    response_model=list[TrayHistoryEntry],
    responses=_HISTORY_LIST,
    summary="Retrieve the power and firmware history of a Rack's trays",
    description="The history rows of every tray of the Rack, newest first."
    + OUTLIVES.format(kind="rack"),
)
async def rack_history(
    org: str,
    id: str,
    services: ServicesDep,
    page: PageDep,
    site_id: SiteIdQuery = None,
    kind: KindQuery = None,
    since: SinceQuery = None,
) -> JSONResponse:
    rack_id: uuid.UUID = parse_uuid(id, INVALID_RACK_ID, "id")
    wanted, after = _filters(kind, since)
    return await _list(
        services, org, site_id, page, HistoryQuery(rack_id=rack_id, kind=wanted, since=after)
    )
