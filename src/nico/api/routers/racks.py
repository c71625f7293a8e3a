"""Racks: `POST /rack` (import with trays and BMCs), `GET /rack`, `GET|DELETE /rack/{id}`.

Every call is site-scoped and Flow-gated (the provider-site guard runs first). A rack
with a Pending, Waiting or Running task cannot be deleted (409).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nico import provisioning
from nico.api.access import rack_in_site, require_site
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.api.inventory_views import rack_views
from nico.api.paging import PageRequest, page_request_ordered, set_pagination_header
from nico.api.store_paging import store_page
from nico.schemas.common import QueryBool
from nico.schemas.inventory import Rack, RackCreateRequest
from nico.store import inventory
from nico.tasks.locks import locked_racks

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)

RACK_ORDER_FIELDS = ("name", "manufacturer", "model")

SiteIdQuery = Annotated[str | None, Query(description="ID of the Site (required)")]
IncludeComponents = Annotated[
    QueryBool, Query(description="Embed the rack's trays as `components`")
]


@router.post(
    "/rack",
    status_code=201,
    response_model=Rack,
    response_model_exclude_none=True,
    summary="Import a Rack with its trays and BMCs",
)
async def create_rack(org: str, body: RackCreateRequest, services: ServicesDep) -> Rack:
    """BMC passwords are stored encrypted and never returned."""
    async with services.db.session() as session:
        site = await require_site(session, org, body.site_id, in_body=True)
        rack = await provisioning.import_rack(session, site, body, services.secrets)
        (view,) = await rack_views(
            session, [rack], with_components=True, settings=services.settings
        )
    return view


@router.get(
    "/rack",
    response_model=list[Rack],
    response_model_exclude_none=True,
    summary="List the Racks of a Site",
)
async def list_racks(
    org: str,
    services: ServicesDep,
    response: Response,
    page: Annotated[PageRequest, Depends(page_request_ordered)],
    siteId: SiteIdQuery = None,
    includeComponents: IncludeComponents = False,
    name: Annotated[list[str] | None, Query(description="Exact rack name; repeatable")] = None,
    manufacturer: Annotated[list[str] | None, Query(description="Exact; repeatable")] = None,
) -> list[Rack]:
    async def read(session: AsyncSession) -> tuple[list[Rack], int]:
        site = await require_site(session, org, siteId)
        order = page.order_by(RACK_ORDER_FIELDS)
        racks, total = await inventory.list_racks(
            session,
            site.id,
            names=name or (),
            manufacturers=manufacturer or (),
            page=store_page(page, order),
        )
        views = await rack_views(
            session,
            racks,
            with_components=includeComponents,
            settings=services.settings,
        )
        return views, total

    views, total = await services.db.read_session(read)
    set_pagination_header(response, page, total)
    return views


@router.get(
    "/rack/{id}",
    response_model=Rack,
    response_model_exclude_none=True,
    summary="Retrieve a Rack",
)
async def get_rack(
    org: str,
    id: str,
    services: ServicesDep,
    siteId: SiteIdQuery = None,
    includeComponents: IncludeComponents = False,
) -> Rack:
    async def read(session: AsyncSession) -> list[Rack]:
        _, rack = await rack_in_site(session, org, siteId, id)
        return await rack_views(
            session, [rack], with_components=includeComponents, settings=services.settings
        )

    (view,) = await services.db.read_session(read)
    return view


@router.delete("/rack/{id}", status_code=204, summary="Delete a Rack and its trays")
async def delete_rack(
    org: str,
    id: str,
    services: ServicesDep,
    siteId: SiteIdQuery = None,
) -> Response:
    """409 while a task on the rack is Pending, Waiting or Running; task history stays."""
    async with services.db.session() as session:
        _, rack = await rack_in_site(session, org, siteId, id)
    # The task manager's rack lock (also the in-process one on SQLite): a submission in
    # flight commits its task first, and then this delete refuses.
    async with locked_racks(services.db, [rack.id]) as session:
        await provisioning.delete_rack(session, rack)
    return Response(status_code=204)
