"""Which trays an operation targets, grouped by rack (one task per rack).

Rack operations target every operable tray (Compute, NVLSwitch, PowerShelf) of the rack;
tray operations target the trays given by id or picked by a filter (upstream's TrayFilter
rules). Inventory-only trays (TorSwitch, UMS, CDU) are never targeted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from nico.domain import OPERABLE_COMPONENT_TYPES, ComponentType, OperationType
from nico.errors import NotFound, ValidationFailed
from nico.store import inventory
from nico.store.inventory import TraySelector
from nico.store.models import Rack, Tray
from nico.tasks.conflicts import TaskFootprint

RACK_NOT_FOUND = "Rack not found"
TRAY_NOT_FOUND = "Tray not found"
FILTER_FAILED = "Failed to validate request data"
_OPERABLE = tuple(t.value for t in OPERABLE_COMPONENT_TYPES)
_TYPE_ORDER = {t.value: i for i, t in enumerate(ComponentType)}


@dataclass(frozen=True)
class RackTargets:
    """One rack and the trays an operation targets on it (ordered by type, slot, index)."""

    rack: Rack
    trays: tuple[Tray, ...]

    def targets_map(self) -> dict[str, list[str]]:
        """The stored form: `{"Compute": [tray ids], ...}`, types with no tray left out."""
        out: dict[str, list[str]] = {}
        for tray in self.trays:
            out.setdefault(tray.type, []).append(str(tray.id))
        return out

    def footprint(self, operation_type: OperationType) -> TaskFootprint:
        return TaskFootprint.of(operation_type, self.targets_map())


def _ordered(trays: Sequence[Tray]) -> tuple[Tray, ...]:
    return tuple(
        sorted(trays, key=lambda t: (_TYPE_ORDER.get(t.type, 99), t.slot_id, t.tray_idx, t.name))
    )


def _group(racks: dict[uuid.UUID, Rack], trays: Sequence[Tray]) -> list[RackTargets]:
    by_rack: dict[uuid.UUID, list[Tray]] = {}
    for tray in trays:
        by_rack.setdefault(tray.rack_id, []).append(tray)
    groups = [RackTargets(racks[rid], _ordered(ts)) for rid, ts in by_rack.items()]
    return sorted(groups, key=lambda g: (g.rack.name, g.rack.id))


async def _operable_trays(session: AsyncSession, rack_ids: Sequence[uuid.UUID]) -> list[Tray]:
    """The racks' operable trays, only the columns a submission reads (id, type, name,
    position): a 200-rack request loads 7,000 of them, and full rows cost seconds."""
    result = await session.execute(
        select(Tray)
        .where(Tray.rack_id.in_(rack_ids), Tray.type.in_(_OPERABLE))
        .options(
            load_only(
                Tray.id,
                Tray.rack_id,
                Tray.type,
                Tray.name,
                Tray.slot_id,
                Tray.tray_idx,
                raiseload=True,
            )
        )
    )
    return list(result.scalars())


async def _racks(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Rack]:
    result = await session.execute(select(Rack).where(Rack.id.in_(ids)))
    return {r.id: r for r in result.scalars()}


def _no_operable_trays(rack: Rack) -> ValidationFailed:
    return ValidationFailed(
        f"Rack {rack.name} has no Compute, NVLSwitch or PowerShelf trays to operate on",
        [("id", "rack has no operable trays")],
    )


async def rack_by_id(session: AsyncSession, site_id: uuid.UUID, rack_id: uuid.UUID) -> RackTargets:
    """All operable trays of one rack; 404 when the rack is not in the site."""
    rack = await session.get(Rack, rack_id)
    if rack is None or rack.site_id != site_id:
        raise NotFound(RACK_NOT_FOUND)
    trays = await _operable_trays(session, [rack.id])
    if not trays:
        raise _no_operable_trays(rack)
    return RackTargets(rack, _ordered(trays))


async def racks_by_names(
    session: AsyncSession, site_id: uuid.UUID, names: Sequence[str] | None
) -> list[RackTargets]:
    """Racks named in `filter.names` (OR), or every rack of the site when `names` is None.

    A named rack that does not exist is a 400 naming it; racks without operable trays
    are left out of a site-wide selection but are an error when named.
    """
    query = select(Rack).where(Rack.site_id == site_id)
    if names is not None:
        query = query.where(Rack.name.in_(set(names)))
    racks = {r.id: r for r in (await session.execute(query)).scalars()}
    if names is not None:
        found = {r.name for r in racks.values()}
        missing = [n for n in dict.fromkeys(names) if n not in found]
        if missing:
            raise ValidationFailed(
                FILTER_FAILED,
                [("filter.names", f"no rack named {', '.join(map(repr, missing))} in the site")],
            )
    groups = _group(racks, await _operable_trays(session, list(racks)))
    if names is not None:
        targeted = {g.rack.id for g in groups}
        empty = [r for r in racks.values() if r.id not in targeted]
        if empty:
            raise _no_operable_trays(sorted(empty, key=lambda r: r.name)[0])
    if not groups:
        raise ValidationFailed(
            FILTER_FAILED, [("filter", "the site has no rack with operable trays")]
        )
    return groups


def _not_operable(tray: Tray, field: str) -> ValidationFailed:
    return ValidationFailed(
        f"Tray {tray.name or tray.id} is a {tray.type}; only Compute, NVLSwitch and "
        "PowerShelf trays can be operated",
        [(field, "tray type cannot be operated")],
    )


async def tray_by_id(session: AsyncSession, site_id: uuid.UUID, tray_id: uuid.UUID) -> RackTargets:
    """One tray; 404 when it is not in the site, 400 when its type cannot be operated."""
    tray = await session.get(Tray, tray_id)
    if tray is None or tray.site_id != site_id:
        raise NotFound(TRAY_NOT_FOUND)
    if tray.type not in _OPERABLE:
        raise _not_operable(tray, "id")
    racks = await _racks(session, [tray.rack_id])
    return RackTargets(racks[tray.rack_id], (tray,))


async def trays_by_selector(
    session: AsyncSession, site_id: uuid.UUID, selector: TraySelector | None
) -> list[RackTargets]:
    """Trays picked by a filter (None = every operable tray of the site), grouped by rack.

    The same query as `GET /tray` (`inventory.selected_trays`). Unknown ids, component
    ids or racks are a 400 naming the filter field; a `slotId` that matches nothing
    selects nothing (the caller answers `{"taskIds": []}`).
    """
    selector = selector or TraySelector()
    rows = await inventory.selected_trays(session, site_id, selector)
    if not rows and selector.names_a_rack():
        await _check_rack_exists(session, site_id, selector)
    trays = [tray for tray, _ in rows]
    _check_named_trays(selector, trays)
    if selector.ids or selector.component_ids:
        for tray in trays:
            if tray.type not in _OPERABLE:
                field = "filter.ids" if selector.ids else "filter.componentIds"
                raise _not_operable(tray, field)
    operable = [t for t in trays if t.type in _OPERABLE]
    if not operable:
        if selector.slot_id is not None:
            return []
        raise ValidationFailed(FILTER_FAILED, [("filter", "matches no operable tray")])
    return _group({rack.id: rack for _, rack in rows}, operable)


async def _check_rack_exists(
    session: AsyncSession, site_id: uuid.UUID, selector: TraySelector
) -> None:
    if selector.rack_id is not None:
        rack = await inventory.get_rack(session, site_id, selector.rack_id)
        field, shown = "filter.rackId", str(selector.rack_id)
    else:
        assert selector.rack_name is not None
        rack = await inventory.get_rack_by_name(session, site_id, selector.rack_name)
        field, shown = "filter.rackName", repr(selector.rack_name)
    if rack is None:
        raise ValidationFailed(FILTER_FAILED, [(field, f"no rack {shown} in the site")])


def _check_named_trays(selector: TraySelector, trays: Sequence[Tray]) -> None:
    if selector.ids:
        found_ids = {t.id for t in trays}
        missing = [str(i) for i in dict.fromkeys(selector.ids) if i not in found_ids]
        if missing:
            raise ValidationFailed(
                FILTER_FAILED, [("filter.ids", f"no tray {', '.join(missing)} in the site")]
            )
    if selector.component_ids:
        found = {t.component_id for t in trays}
        missing = [c for c in dict.fromkeys(selector.component_ids) if c not in found]
        if missing:
            raise ValidationFailed(
                FILTER_FAILED,
                [
                    (
                        "filter.componentIds",
                        f"no {selector.type} tray with component id "
                        f"{', '.join(map(repr, missing))} in the site",
                    )
                ],
            )


# --- ACPowerCycle ------------------------------------------------------------------------

SHELF = ComponentType.POWERSHELF.value
BackendOf = Callable[[Tray, Rack], str]
CapabilityOf = Callable[[str, ComponentType], bool]


async def ac_power_cycle_targets(
    session: AsyncSession,
    groups: Sequence[RackTargets],
    *,
    backend_of: BackendOf,
    can_cycle: CapabilityOf,
    summary: str,
) -> list[RackTargets]:
    """What an AC power cycle acts on, checked before anything is sent.

    A rack's PowerShelf trays carry it out: each cuts its AC output and restores it, so
    every tray behind it (every Compute and NVLSwitch tray of its rack) goes through Off
    and back. Each rack's task therefore targets the selected shelves plus every
    Compute/NVLSwitch tray of the rack: conflicts with other tasks on those trays are
    checked, and the rule verifies each one cycled and came back. A rack with no selected
    shelf, or a shelf whose backend cannot cut AC, is a 400 naming the trays.
    """
    rack_ids = [g.rack.id for g in groups]
    result = await session.execute(
        select(Tray)
        .where(Tray.rack_id.in_(rack_ids), Tray.type.in_(_OPERABLE))
        .options(
            load_only(
                Tray.id,
                Tray.rack_id,
                Tray.type,
                Tray.name,
                Tray.slot_id,
                Tray.tray_idx,
                Tray.backend,
                raiseload=True,
            )
        )
    )
    by_rack: dict[uuid.UUID, list[Tray]] = {}
    for tray in result.scalars():
        by_rack.setdefault(tray.rack_id, []).append(tray)
    problems: list[str] = []
    out: list[RackTargets] = []
    for group in groups:
        rack_trays = by_rack.get(group.rack.id, [])
        chosen = {t.id for t in group.trays if t.type == SHELF}
        shelves = [t for t in rack_trays if t.id in chosen]
        if not shelves:
            named = ", ".join(t.name or str(t.id) for t in group.trays)
            problems.append(
                f"rack {group.rack.name}: no PowerShelf tray selected to cut AC ({named}); "
                "select the rack or its PowerShelf trays"
            )
            continue
        unable = [
            f"{t.name or t.id} ({backend_of(t, group.rack)} backend)"
            for t in shelves
            if not can_cycle(backend_of(t, group.rack), ComponentType.POWERSHELF)
        ]
        if unable:
            problems.append(f"rack {group.rack.name}: cannot AC power cycle {', '.join(unable)}")
            continue
        behind = [t for t in rack_trays if t.type != SHELF]
        out.append(RackTargets(group.rack, _ordered(shelves + behind)))
    if problems:
        raise ValidationFailed(summary, [("state", "ACPowerCycle: " + "; ".join(problems))])
    return out
