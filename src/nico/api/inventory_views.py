"""Store rows -> rack, tray and BMC wire models (credentials never leave the store)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from nico.config import Settings
from nico.hardware.registry import effective_backend
from nico.schemas import inventory as wire
from nico.store import inventory
from nico.store.models import Bmc, Rack, Tray
from nico.store.task_stats import TaskStats, rack_task_stats, tray_task_stats


def stats_view(stats: TaskStats | None) -> wire.TaskStats:
    stats = stats or TaskStats()
    return wire.TaskStats(pending_task_count=stats.pending, active_task_count=stats.active)


async def trays_task_stats(
    session: AsyncSession, site_id: uuid.UUID, trays: list[Tray]
) -> dict[uuid.UUID, wire.TaskStats]:
    """`taskStats` of each tray (one query)."""
    found = await tray_task_stats(session, site_id, [(t.id, t.rack_id) for t in trays])
    return {t.id: stats_view(found.get(t.id)) for t in trays}


def bmc_view(bmc: Bmc) -> wire.BmcOut:
    return wire.BmcOut(
        type=wire.BMC_TYPES.get(bmc.type, "BmcTypeUnknown"),
        mac_address=bmc.mac_address or "",
        ip_address=bmc.ip_address or "",
        port=bmc.port,
        resource_id=bmc.resource_id,
        credentials_set=bool(bmc.username and bmc.password_encrypted),
    )


def tray_view(
    tray: Tray,
    rack: Rack,
    bmcs: list[Bmc],
    settings: Settings,
    task_stats: wire.TaskStats | None = None,
) -> wire.Tray:
    return wire.Tray(
        id=tray.id,
        component_id=tray.component_id or "",
        type=tray.type,
        name=tray.name,
        manufacturer=tray.manufacturer,
        model=tray.model,
        serial_number=tray.serial_number,
        description=tray.description,
        firmware_version=tray.firmware_version,
        power_state=tray.power_state,
        position=wire.PositionOut(
            slot_id=tray.slot_id, tray_idx=tray.tray_idx, host_id=tray.host_id
        ),
        bmcs=[bmc_view(b) for b in bmcs],
        rack_id=tray.rack_id,
        rack_name=rack.name,
        # What the worker will drive it with (the registry's own resolution).
        backend=effective_backend(tray.backend, rack.backend, settings),
        task_stats=task_stats,
    )


def component_view(tray: Tray, bmcs: list[Bmc], backend: str) -> wire.RackComponent:
    return wire.RackComponent(
        id=tray.id,
        component_id=tray.component_id or "",
        rack_id=tray.rack_id,
        type=tray.type,
        name=tray.name,
        serial_number=tray.serial_number,
        manufacturer=tray.manufacturer,
        model=tray.model,
        description=tray.description,
        firmware_version=tray.firmware_version,
        slot_id=tray.slot_id,
        tray_idx=tray.tray_idx,
        host_id=tray.host_id,
        bmcs=[bmc_view(b) for b in bmcs],
        power_state=tray.power_state,
        backend=backend,
    )


async def rack_views(
    session: AsyncSession, racks: list[Rack], *, with_components: bool, settings: Settings
) -> list[wire.Rack]:
    """Racks with their `taskStats`, each with its trays and their BMCs when asked (four
    queries in all)."""
    stats = await rack_task_stats(session, racks[0].site_id, [r.id for r in racks]) if racks else {}
    trays: dict[uuid.UUID, list[Tray]] = {}
    bmcs: dict[uuid.UUID, list[Bmc]] = {}
    if with_components:
        trays = await inventory.trays_of_racks(session, [r.id for r in racks])
        bmcs = await inventory.bmcs_of_trays(
            session, [t.id for rack_trays in trays.values() for t in rack_trays]
        )
    out: list[wire.Rack] = []
    for rack in racks:
        components = None
        if with_components:
            components = [
                component_view(t, bmcs[t.id], effective_backend(t.backend, rack.backend, settings))
                for t in trays[rack.id]
            ]
        location = wire.LocationOut.model_validate(rack.location) if rack.location else None
        out.append(
            wire.Rack(
                id=rack.id,
                name=rack.name,
                manufacturer=rack.manufacturer,
                model=rack.model,
                serial_number=rack.serial_number,
                description=rack.description,
                location=location,
                # Upstream omits an empty component list (`omitempty`).
                components=components or None,
                site_id=rack.site_id,
                backend=effective_backend(None, rack.backend, settings),
                task_stats=stats_view(stats.get(rack.id)),
                created=rack.created,
                updated=rack.updated,
            )
        )
    return out
