"""Trays: `GET /tray` (upstream's filters and combination rules) and `GET /tray/{id}`.

The provider-site guard runs before any filter is validated (upstream T1 order); a
malformed `siteId` is a 400 here, where upstream answers 500.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from nico.api.access import parse_uuid, require_site
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.api.inventory_views import tray_view
from nico.api.paging import PageRequest, page_request_ordered, set_pagination_header
from nico.api.store_paging import store_page
from nico.domain import ComponentType, component_type_names
from nico.errors import NotFound, ValidationFailed
from nico.schemas.inventory import Tray
from nico.store import inventory

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)

TRAY_ORDER_FIELDS = ("name", "manufacturer", "model", "type")
INVALID_TRAY_ID = "Invalid Tray ID in URL"
TRAY_NOT_FOUND = "Tray not found"
INVALID_FILTER = "Failed to validate request data"

SiteIdQuery = Annotated[str | None, Query(description="ID of the Site (required)")]


def tray_filter(
    site_id: uuid.UUID,
    rack_id: str | None,
    rack_name: str | None,
    tray_type: str | None,
    ids: list[str],
    component_ids: list[str],
    slot_id: int | None,
) -> inventory.TrayFilter:
    """Upstream's T1 rules; every problem is reported at once, keyed by query name."""
    errors: list[tuple[str, str]] = []
    parsed_rack: uuid.UUID | None = None
    if rack_id is not None:
        try:
            parsed_rack = uuid.UUID(rack_id)
        except ValueError:
            errors.append(("rackId", "must be a valid UUID"))
    parsed_type: ComponentType | None = None
    if tray_type is not None:
        try:
            parsed_type = ComponentType.parse(tray_type)
        except ValueError:
            errors.append(("type", f"must be one of {component_type_names()}"))
    parsed_ids: list[uuid.UUID] = []
    for value in ids:
        try:
            parsed_ids.append(uuid.UUID(value))
        except ValueError:
            errors.append(("id", f"must be a valid UUID: {value}"))
    has_rack = rack_id is not None or rack_name is not None
    if rack_id is not None and rack_name is not None:
        errors.append(("rackId", "rackId and rackName are mutually exclusive"))
    if has_rack and (ids or component_ids):
        errors.append(("rackId", "rackId/rackName cannot be combined with id/componentId"))
    if component_ids and tray_type is None:
        errors.append(("componentId", "type is required when componentId is provided"))
    if slot_id is not None and slot_id < 0:
        errors.append(("slotId", "must be >= 0"))
    elif slot_id is not None and not has_rack:
        errors.append(("slotId", "rackId or rackName is required when slotId is set"))
    if errors:
        raise ValidationFailed(INVALID_FILTER, errors)
    return inventory.TrayFilter(
        site_id=site_id,
        rack_id=parsed_rack,
        rack_name=rack_name,
        type=parsed_type.value if parsed_type else None,
        ids=tuple(parsed_ids),
        component_ids=tuple(component_ids),
        slot_id=slot_id,
    )


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
    default_backend = services.settings.backend
    async with services.db.session() as session:
        site = await require_site(session, org, siteId)
        where = tray_filter(
            site.id, rackId, rackName, tray_type, ids or [], componentId or [], slotId
        )
        order = page.order_by(TRAY_ORDER_FIELDS)
        rows, total = await inventory.list_trays(session, where, store_page(page, order))
        bmcs = await inventory.bmcs_of_trays(session, [tray.id for tray, _ in rows])
    set_pagination_header(response, page, total)
    return [tray_view(tray, rack, bmcs[tray.id], default_backend) for tray, rack in rows]


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
    async with services.db.session() as session:
        site = await require_site(session, org, siteId)
        tray_id = parse_uuid(id, INVALID_TRAY_ID, "id")
        found = await inventory.get_tray(session, site.id, tray_id)
        if found is None:
            raise NotFound(TRAY_NOT_FOUND)
        tray, rack = found
        bmcs = await inventory.bmcs_of_trays(session, [tray.id])
    return tray_view(tray, rack, bmcs[tray.id], services.settings.backend)
