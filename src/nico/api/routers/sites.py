"""Sites: `POST|GET /site`, `GET|PATCH|DELETE /site/{id}` with `capabilities.flow`.

Site CRUD itself is not Flow-gated (it is how Flow gets enabled). A site with racks
cannot be deleted (409) so inventory and task history never vanish by accident.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nico import provisioning
from nico.api.access import SITE_FOREIGN, parse_uuid, require_provider
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.api.paging import PageRequest, page_request_ordered, set_pagination_header
from nico.api.store_paging import store_page
from nico.errors import BadRequest, Forbidden, NotFound
from nico.schemas.common import GO_FALSE, GO_TRUE
from nico.schemas.site import (
    Site,
    SiteCapabilities,
    SiteCreateRequest,
    SiteRedfish,
    SiteUpdateRequest,
)
from nico.store import inventory
from nico.store import models as db

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)

SITE_ORDER_FIELDS = ("name", "created")
INVALID_SITE_ID = "Invalid Site ID specified in URL"
SITE_NOT_FOUND = "Site not found"
BAD_FLOW_FILTER = "Invalid value specified for `isFlowEnabled` query param"

# Go's strconv.ParseBool forms, as upstream accepts them.


def site_view(site: db.Site) -> Site:
    return Site(
        id=site.id,
        name=site.name,
        description=site.description,
        infrastructure_provider_id=site.provider_id,
        capabilities=SiteCapabilities(flow=site.flow_enabled),
        redfish=SiteRedfish(
            verify_tls=site.bmc_verify_tls,
            ca_bundle=site.bmc_ca_bundle,
            firmware_catalog=site.firmware_catalog,
        ),
        created=site.created,
        updated=site.updated,
    )


async def load_site(session: AsyncSession, org: str, raw_id: str) -> db.Site:
    """Provider -> UUID (400) -> exists (404) -> belongs to the org's provider (403)."""
    provider = await require_provider(session, org)
    site_id = parse_uuid(raw_id, INVALID_SITE_ID, "id")
    site = await inventory.get_site(session, site_id)
    if site is None:
        raise NotFound(SITE_NOT_FOUND)
    if site.provider_id != provider.id:
        raise Forbidden(SITE_FOREIGN)
    return site


def parse_flow_filter(value: str | None) -> bool | None:
    if value is None:
        return None
    if value in GO_TRUE:
        return True
    if value in GO_FALSE:
        return False
    raise BadRequest(BAD_FLOW_FILTER, {"isFlowEnabled": "must be true or false"})


@router.post("/site", status_code=201, response_model=Site, summary="Create a Site")
async def create_site(org: str, body: SiteCreateRequest, services: ServicesDep) -> Site:
    """Creates the org's provider if missing and installs the built-in rules as defaults."""
    async with services.db.session() as session:
        provider = await inventory.get_or_create_provider(session, org)
        flow = bool(body.capabilities and body.capabilities.flow)
        site = await provisioning.create_site(
            session,
            provider,
            name=body.name,
            description=body.description,
            flow=flow,
            redfish=body.redfish,
        )
        view = site_view(site)
    return view


@router.get("/site", response_model=list[Site], summary="List the org's Sites")
async def list_sites(
    org: str,
    services: ServicesDep,
    response: Response,
    page: Annotated[PageRequest, Depends(page_request_ordered)],
    isFlowEnabled: Annotated[
        str | None, Query(description="Only sites with (true) or without (false) Flow")
    ] = None,
) -> list[Site]:
    flow = parse_flow_filter(isFlowEnabled)
    order = page.order_by(SITE_ORDER_FIELDS)

    async def read(session: AsyncSession) -> tuple[list[db.Site], int]:
        provider = await inventory.get_provider(session, org)
        if provider is None:
            return [], 0
        return await inventory.list_sites(
            session, provider.id, flow=flow, page=store_page(page, order)
        )

    sites, total = await services.db.read_session(read)
    set_pagination_header(response, page, total)
    return [site_view(s) for s in sites]


@router.get("/site/{id}", response_model=Site, summary="Retrieve a Site")
async def get_site(org: str, id: str, services: ServicesDep) -> Site:

    async def read(session: AsyncSession) -> Site:
        return site_view(await load_site(session, org, id))

    return await services.db.read_session(read)


@router.patch("/site/{id}", response_model=Site, summary="Update a Site (e.g. enable Flow)")
async def update_site(org: str, id: str, body: SiteUpdateRequest, services: ServicesDep) -> Site:
    async with services.db.session() as session:
        site = await load_site(session, org, id)
        site = await provisioning.update_site(session, site, body)
        view = site_view(site)
    return view


@router.delete("/site/{id}", status_code=204, summary="Delete an empty Site")
async def delete_site(org: str, id: str, services: ServicesDep) -> Response:
    async with services.db.session() as session:
        site = await load_site(session, org, id)
        await provisioning.delete_site(session, site)
    return Response(status_code=204)
