"""Power reads: `GET /tray/{id}/power` and `GET /rack/{id}/power` (upstream's "Get Tray
power state" / "Get Rack power state").

Passive: they read what the state sync and tasks last observed (docs/state.md) and
never touch a BMC. Same guard, id checks and errors as the other reads under a rack or
tray (`nico.api.access`: 400 malformed id, 404 unknown or in another site).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api import power_views as views
from nico.api.access import rack_in_site, tray_in_site
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.schemas.power import RackPower, TrayPower
from nico.store import inventory
from nico.store.observations import observations_of
from nico.store.task_stats import POWER, last_power_tasks, last_tray_power_task, open_tasks

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)

SiteIdQuery = Annotated[str | None, Query(description="ID of the Site (required)")]


@router.get(
    "/tray/{id}/power",
    response_model=TrayPower,
    summary="Get Tray power state",
    description="The tray's actual power state as last observed (with when, and the "
    "error and last good value when the last read failed), the state its last power task "
    "asked for, and its power tasks in flight. Reads only what was observed; never "
    "contacts the BMC.",
)
async def get_tray_power(
    org: str, id: str, services: ServicesDep, siteId: SiteIdQuery = None
) -> TrayPower:
    async def read(session: AsyncSession) -> TrayPower:
        site, tray = await tray_in_site(session, org, siteId, id)
        seen = (await observations_of(session, [tray.id])).get(tray.id)
        last = await last_tray_power_task(session, site.id, tray.id)
        in_flight = await open_tasks(session, site.id, tray.rack_id, POWER)
        return views.tray_power(tray, seen, last, in_flight)

    return await services.db.read_session(read)


@router.get(
    "/rack/{id}/power",
    response_model=RackPower,
    summary="Get Rack power state",
    description="Summaries of the rack's actual and desired power (On, Off, Mixed, "
    "Unknown, with coverage counts), every tray's power as in `GET /tray/{id}/power`, and "
    "the rack's power tasks in flight. Reads only what was observed; never contacts a BMC.",
)
async def get_rack_power(
    org: str, id: str, services: ServicesDep, siteId: SiteIdQuery = None
) -> RackPower:
    async def read(session: AsyncSession) -> RackPower:
        _, rack = await rack_in_site(session, org, siteId, id)
        trays = (await inventory.trays_of_racks(session, [rack.id]))[rack.id]
        seen = await observations_of(session, [t.id for t in trays])
        last = await last_power_tasks(session, rack.site_id, [t.id for t in trays])
        in_flight = await open_tasks(session, rack.site_id, rack.id, POWER)
        components = [views.tray_power(t, seen.get(t.id), last.get(t.id), in_flight) for t in trays]
        return RackPower(
            id=rack.id,
            name=rack.name,
            site_id=rack.site_id,
            actual=views.actual_summary(components),
            desired=views.desired_summary(components),
            components=components,
            tasks=[views.power_task(t) for t in in_flight],
        )

    return await services.db.read_session(read)
