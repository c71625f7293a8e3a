"""Firmware reads (our addition): `GET /rack/{id}/firmware` and `GET /tray/{id}/firmware`
say, per tray, what it runs as last observed, the site catalog's target and compliance,
and which firmware tasks are in flight.

Nothing here touches a BMC: versions come from what the state sync and tasks recorded
(`nico.store.observations`); `observedAt` says how fresh each is (docs/firmware.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api.access import rack_in_site, tray_in_site
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.domain import OperationType
from nico.schemas.firmware import (
    FirmwareComponentStatus,
    FirmwareSummary,
    FirmwareTask,
    RackFirmware,
    TrayFirmware,
)
from nico.store import inventory
from nico.store.observations import observations_of
from nico.store.task_stats import TaskRow, open_tasks
from nico.tasks.compliance import (
    TrayCompliance,
    catalog_targets,
    stale_count,
    summary,
    tray_compliance,
)
from nico.tasks.firmware import describe_version

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)

FIRMWARE = OperationType.FIRMWARE_CONTROL.value

SiteIdQuery = Annotated[str | None, Query(description="ID of the Site (required)")]


def firmware_task(task: TaskRow) -> FirmwareTask:
    info: dict[str, Any] = task.information or {}
    version = info.get("version")
    return FirmwareTask(
        id=task.id,
        status=task.status,
        operation_code=task.operation_code,
        version=describe_version(version) if isinstance(version, str | dict) else None,
        override_version_check=info.get("overrideVersionCheck") is True,
        created=task.created,
        started=task.started,
    )


def tray_firmware(state: TrayCompliance, in_flight: list[TaskRow]) -> TrayFirmware:
    tray = state.tray
    return TrayFirmware(
        id=tray.id,
        name=tray.name,
        type=tray.type,
        rack_id=tray.rack_id,
        version=state.version,
        observed_at=state.observed_at,
        error=state.error,
        error_at=state.error_at,
        target_version=state.target,
        compliance=state.compliance.value,
        stale=state.stale,
        components=[
            FirmwareComponentStatus(
                name=c.name,
                id=c.id,
                version=c.version,
                target_version=c.target,
                compliance=c.compliance.value,
            )
            for c in state.components
        ],
        tasks=[firmware_task(t) for t in in_flight if t.targets_tray(tray.id)],
    )


@router.get(
    "/rack/{id}/firmware",
    response_model=RackFirmware,
    summary="Firmware of a Rack's trays: installed, catalog target, compliance",
)
async def get_rack_firmware(
    org: str, id: str, services: ServicesDep, siteId: SiteIdQuery = None
) -> RackFirmware:
    async def read(session: AsyncSession) -> RackFirmware:
        site, rack = await rack_in_site(session, org, siteId, id)
        trays = (await inventory.trays_of_racks(session, [rack.id]))[rack.id]
        observed = await observations_of(session, [t.id for t in trays])
        in_flight = await open_tasks(session, site.id, rack.id, FIRMWARE)
        targets = catalog_targets(site.firmware_catalog)
        states = [tray_compliance(t, observed.get(t.id), targets) for t in trays]
        counts = summary(states)
        return RackFirmware(
            id=rack.id,
            name=rack.name,
            site_id=rack.site_id,
            summary=FirmwareSummary(
                total=len(states),
                stale=stale_count(states),
                **{kind.value: n for kind, n in counts.items()},
            ),
            components=[tray_firmware(s, in_flight) for s in states],
            tasks=[firmware_task(t) for t in in_flight],
        )

    return await services.db.read_session(read)


@router.get(
    "/tray/{id}/firmware",
    response_model=TrayFirmware,
    summary="Firmware of a Tray: installed, catalog target, compliance",
)
async def get_tray_firmware(
    org: str, id: str, services: ServicesDep, siteId: SiteIdQuery = None
) -> TrayFirmware:
    async def read(session: AsyncSession) -> TrayFirmware:
        site, tray = await tray_in_site(session, org, siteId, id)
        observed = (await observations_of(session, [tray.id])).get(tray.id)
        in_flight = await open_tasks(session, site.id, tray.rack_id, FIRMWARE)
        state = tray_compliance(tray, observed, catalog_targets(site.firmware_catalog))
        return tray_firmware(state, in_flight)

    return await services.db.read_session(read)
