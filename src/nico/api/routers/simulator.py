"""Simulator fault drills: inject BMC failures into simulated trays so rules can be tried
against them before they meet real racks (our addition; see docs/drills.md).

`POST|GET|DELETE /simulator/fault`, `DELETE /simulator/fault/{id}`. Site-scoped and
Flow-gated like every call; only where the simulator drives the trays (404 otherwise).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api.access import parse_uuid, require_site
from nico.api.body_errors import SummarizedRoute, validation_summary
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.api.paging import PageRequest, page_request, set_pagination_header
from nico.errors import NotFound, ValidationFailed
from nico.hardware.registry import effective_backend
from nico.ids import optional_uuid
from nico.schemas.simulator import (
    FaultCreateRequest,
    FaultsCleared,
    SimulatorFault,
    fault_wire,
)
from nico.services import Services
from nico.store import simulator as sim_store
from nico.store.models import Rack, SimFault, Site, Tray, utcnow

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES, route_class=SummarizedRoute)

SIMULATOR = "simulator"
FAULT_FAILED = "Failed to validate simulator fault request data"
NOT_SIMULATED_SITE = "simulator is not the backend of this site: fault drills need simulated trays"
NOT_SIMULATED_TRAY = (
    "simulator is not the backend of tray {tray} (it uses {backend}): "
    "fault drills need simulated trays"
)
FAULT_NOT_FOUND = "Simulator fault not found"
INVALID_FAULT_ID = "Invalid Simulator Fault ID specified in URL"
INVALID_TRAY_ID = "Invalid Tray ID specified in request"
INVALID_RACK_ID = "Invalid Rack ID specified in request"

SiteIdQuery = Annotated[str | None, Query(description="ID of the Site (required)")]
TrayIdQuery = Annotated[str | None, Query(description="Only faults aimed at this tray")]
RackIdQuery = Annotated[str | None, Query(description="Only faults aimed at this rack")]


def view(fault: SimFault, tray_name: str | None) -> SimulatorFault:
    return SimulatorFault(
        id=fault.id,
        site_id=fault.site_id,
        rack_id=fault.rack_id,
        tray_id=fault.tray_id,
        tray_name=tray_name,
        component_type=fault.component_type,
        fault=fault_wire(fault.kind, fault.slow_seconds),
        remaining=fault.remaining,
        expires=fault.expires_at,
        created=fault.created,
    )


def _require_simulated(services: Services, trays: Iterable[tuple[Tray, Rack]]) -> None:
    """404 naming the first tray another backend drives."""
    for tray, rack in trays:
        backend = services.backends.backend_name(tray, rack)
        if backend != SIMULATOR:
            name = f"{rack.name}/{tray.name}"
            raise NotFound(NOT_SIMULATED_TRAY.format(tray=name, backend=backend))


async def _require_simulated_site(session: AsyncSession, services: Services, site: Site) -> None:
    """404 unless the simulator drives some tray of the site (or, with no trays yet, is
    NICO_BACKEND)."""
    choices = await sim_store.site_backend_choices(session, site.id)
    backends = {effective_backend(t, r, services.settings) for t, r in choices}
    if not choices:
        backends = {services.settings.backend}
    if SIMULATOR not in backends:
        raise NotFound(NOT_SIMULATED_SITE)


async def _scope(
    session: AsyncSession, services: Services, site: Site, body: FaultCreateRequest
) -> tuple[list[tuple[Tray, Rack]], uuid.UUID | None]:
    """The trays the fault covers and the rack it is limited to; 400 naming the field for
    an id the site does not have, 404 when another backend drives any of them."""
    errors: list[tuple[str, str]] = []
    rack_id = None
    if body.rack_id is not None:
        rack_id = optional_uuid(body.rack_id, "rackId", errors)
    tray_ids: list[uuid.UUID] | None = None
    if body.tray_ids is not None:
        tray_ids = []
        for i, raw in enumerate(body.tray_ids):
            tray_id = optional_uuid(raw, f"trayIds[{i}]", errors)
            if tray_id is None:
                continue
            if tray_id in tray_ids:
                errors.append((f"trayIds[{i}]", "is listed twice"))
            else:
                tray_ids.append(tray_id)
    if errors:
        raise ValidationFailed(FAULT_FAILED, errors)
    trays = await sim_store.trays_in_scope(
        session,
        site.id,
        tray_ids=tray_ids,
        rack_id=rack_id,
        component_type=body.component_type.value if body.component_type else None,
    )
    if tray_ids is not None:
        found = {tray.id for tray, _ in trays}
        errors = [
            (f"trayIds[{i}]", "is not a tray of the site")
            for i, tray_id in enumerate(tray_ids)
            if tray_id not in found
        ]
    if rack_id is not None and not trays:
        rack = await session.get(Rack, rack_id)
        if rack is None or rack.site_id != site.id:
            errors.append(("rackId", "is not a rack of the site"))
        elif effective_backend(None, rack.backend, services.settings) != SIMULATOR:
            raise NotFound(NOT_SIMULATED_SITE)
    if errors:
        raise ValidationFailed(FAULT_FAILED, errors)
    _require_simulated(services, trays)
    if not trays and rack_id is None:
        await _require_simulated_site(session, services, site)
    return trays, rack_id


@router.post(
    "/simulator/fault",
    status_code=201,
    response_model=list[SimulatorFault],
    summary="Inject a fault into simulated trays (a fault drill)",
)
@validation_summary(FAULT_FAILED)
async def create_fault(
    org: str, body: FaultCreateRequest, services: ServicesDep
) -> list[SimulatorFault]:
    """One fault per named tray (each with its own `count`), or one fault for the
    type/rack/site scope (its `count` shared by the trays it matches). Answers the faults
    created; the simulator evaluates them on every call from then on."""
    problems = body.scope_errors()
    if problems:
        raise ValidationFailed(FAULT_FAILED, problems)
    spec = body.fault_spec()
    now = utcnow()
    try:
        expires = body.expires_at(now)
    except ValueError as exc:
        # A time that was still ahead when the body was validated may have passed since.
        raise ValidationFailed(FAULT_FAILED, [("expiry", str(exc))]) from None
    async with services.db.session() as session:
        site = await require_site(session, org, body.site_id, in_body=True)
        trays, rack_id = await _scope(session, services, site, body)

        def fault(tray: Tray | None) -> SimFault:
            return SimFault(
                site_id=site.id,
                rack_id=tray.rack_id if tray else rack_id,
                tray_id=tray.id if tray else None,
                component_type=body.component_type.value if body.component_type else None,
                kind=spec.kind.value,
                slow_seconds=spec.slow_seconds,
                remaining=body.count,
                expires_at=expires,
                created=now,
            )

        made: list[tuple[SimFault, str | None]]
        if body.tray_ids is not None:
            made = [(fault(tray), tray.name) for tray, _ in trays]
        else:
            made = [(fault(None), None)]
        await sim_store.add_faults(session, [f for f, _ in made])
        return [view(f, name) for f, name in made]


@router.get(
    "/simulator/fault",
    response_model=list[SimulatorFault],
    summary="List the faults that can still fire",
)
async def list_faults(
    org: str,
    services: ServicesDep,
    response: Response,
    page: Annotated[PageRequest, Depends(page_request)],
    siteId: SiteIdQuery = None,
    trayId: TrayIdQuery = None,
    rackId: RackIdQuery = None,
) -> list[SimulatorFault]:
    """Oldest first; spent (count used up) and expired faults are not listed."""

    async def read(session: AsyncSession) -> tuple[list[tuple[SimFault, str | None]], int]:
        site = await require_site(session, org, siteId)
        await _require_simulated_site(session, services, site)
        return await sim_store.list_live_faults(
            session,
            site.id,
            utcnow(),
            rack_id=None if rackId is None else parse_uuid(rackId, INVALID_RACK_ID, "rackId"),
            tray_id=None if trayId is None else parse_uuid(trayId, INVALID_TRAY_ID, "trayId"),
            offset=page.offset,
            limit=page.limit,
        )

    rows, total = await services.db.read_session(read)
    set_pagination_header(response, page, total)
    return [view(fault, name) for fault, name in rows]


@router.delete(
    "/simulator/fault",
    response_model=FaultsCleared,
    summary="Clear a site's faults (optionally only a rack's or a tray's)",
)
async def clear_faults(
    org: str,
    services: ServicesDep,
    siteId: SiteIdQuery = None,
    trayId: TrayIdQuery = None,
    rackId: RackIdQuery = None,
) -> FaultsCleared:
    """With `trayId` only the faults aimed at that tray go (type- or site-wide faults
    stay); with `rackId` those aimed at that rack or its trays."""
    async with services.db.session() as session:
        site = await require_site(session, org, siteId)
        await _require_simulated_site(session, services, site)
        deleted = await sim_store.delete_faults(
            session,
            site.id,
            rack_id=None if rackId is None else parse_uuid(rackId, INVALID_RACK_ID, "rackId"),
            tray_id=None if trayId is None else parse_uuid(trayId, INVALID_TRAY_ID, "trayId"),
        )
    return FaultsCleared(deleted=deleted)


@router.delete("/simulator/fault/{id}", status_code=204, summary="Clear one fault")
async def clear_fault(
    org: str, id: str, services: ServicesDep, siteId: SiteIdQuery = None
) -> Response:
    async with services.db.session() as session:
        site = await require_site(session, org, siteId)
        await _require_simulated_site(session, services, site)
        fault_id = parse_uuid(id, INVALID_FAULT_ID, "id")
        if not await sim_store.delete_fault(session, site.id, fault_id):
            raise NotFound(FAULT_NOT_FOUND)
    return Response(status_code=204)
