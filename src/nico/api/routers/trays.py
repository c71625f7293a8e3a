"""Trays: `GET /tray` (upstream's filters and combination rules) and `GET /tray/{id}`.

The provider-site guard runs before any filter is validated (upstream T1 order); a
malformed `siteId` is a 400 here, where upstream answers 500.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api.access import parse_uuid, require_site
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.api.inventory_views import tray_view, trays_task_stats
from nico.api.paging import PageRequest, page_request_ordered, set_pagination_header
from nico.api.store_paging import store_page
from nico.api.tray_selector import QUERY_FIELDS, tray_selector
from nico.domain import ComponentType
from nico.errors import NotFound
from nico.schemas.inventory import Tray
from nico.store import inventory

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)

TRAY_ORDER_FIELDS = ("name", "manufacturer", "model", "type")
INVALID_TRAY_ID = "Invalid Tray ID in URL"
TRAY_NOT_FOUND = "Tray not found"
INVALID_FILTER = "Failed to validate request data"

SiteIdQuery = Annotated[str | None, Query(description="ID of the Site (required)")]


@router.get(
    "/tray",
    response_model=list[Tray],
    response_model_exclude_none=True,
    summary="List the Trays of a Site",
)
async def list_trays(
    org: str,
    services: ServicesDep,
    response: Response,
    page: Annotated[PageRequest, Depends(page_request_ordered)],
    siteId: SiteIdQuery = None,
    rackId: Annotated[str | None, Query(description="Only this rack's trays")] = None,
    rackName: Annotated[str | None, Query(description="Only this rack's trays")] = None,
    tray_type: Annotated[
        str | None, Query(alias="type", description="Compute, NVLSwitch (NVSwitch) or PowerShelf")
    ] = None,
    ids: Annotated[list[str] | None, Query(alias="id", description="Tray id; repeatable")] = None,
    componentId: Annotated[
        list[str] | None, Query(description="External component id; repeatable; needs type")
    ] = None,
    slotId: Annotated[int | None, Query(description="Rack slot; needs rackId or rackName")] = None,
) -> list[Tray]:
    async def read(session: AsyncSession) -> tuple[list[Tray], int]:
        site = await require_site(session, org, siteId)
        selector = tray_selector(
            rack_id=rackId,
            rack_name=rackName,
            type=tray_type,
            component_ids=componentId or [],
            ids=ids or [],
            slot_id=slotId,
            fields=QUERY_FIELDS,
            types=tuple(ComponentType),
            summary=INVALID_FILTER,
        )
        order = page.order_by(TRAY_ORDER_FIELDS)
        rows, total = await inventory.list_trays(
            session, site.id, selector, store_page(page, order)
        )
        bmcs = await inventory.bmcs_of_trays(session, [tray.id for tray, _ in rows])
        stats = await trays_task_stats(session, site.id, [tray for tray, _ in rows])
        views = [
            tray_view(tray, rack, bmcs[tray.id], services.settings, stats[tray.id])
            for tray, rack in rows
        ]
        return views, total

    views, total = await services.db.read_session(read)
    set_pagination_header(response, page, total)
    return views


@router.get(
    "/tray/{id}",
    response_model=Tray,
    response_model_exclude_none=True,
    summary="Retrieve a Tray",
)
async def get_tray(
    org: str,
    id: str,
    services: ServicesDep,
    siteId: SiteIdQuery = None,
) -> Tray:
    async def read(session: AsyncSession) -> Tray:
        site = await require_site(session, org, siteId)
        tray_id = parse_uuid(id, INVALID_TRAY_ID, "id")
        found = await inventory.get_tray(session, site.id, tray_id)
        if found is None:
            raise NotFound(TRAY_NOT_FOUND)
        tray, rack = found
        bmcs = await inventory.bmcs_of_trays(session, [tray.id])
        stats = await trays_task_stats(session, site.id, [tray])
        return tray_view(tray, rack, bmcs[tray.id], services.settings, stats[tray.id])

    return await services.db.read_session(read)
