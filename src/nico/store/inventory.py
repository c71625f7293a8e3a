"""Queries for providers, sites, racks, trays and BMCs.

Every list returns `(rows, total)` where `total` counts the rows after filters and
before paging, and orders by a unique tie-breaker so pages never overlap.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from nico.domain import ComponentType
from nico.store.models import Bmc, Provider, Rack, Site, Task, Tray
from nico.store.tasks import NOT_FINISHED

# Any SELECT, whatever its row shape (SQLAlchemy 2.1 types rows as a variadic tuple).
AnySelect: TypeAlias = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class Page:
    """Offset/limit plus an optional sort field (already validated by the caller)."""

    offset: int = 0
    limit: int = 20
    order_field: str | None = None
    descending: bool = False


# --- providers -------------------------------------------------------------------------


async def get_provider(session: AsyncSession, org: str) -> Provider | None:
    result = await session.execute(select(Provider).where(Provider.org == org.lower()))
    return result.scalar_one_or_none()


async def get_or_create_provider(session: AsyncSession, org: str) -> Provider:
    """The org's provider, created on first use (one per org, also under concurrent calls)."""
    provider = await get_provider(session, org)
    if provider is not None:
        return provider
    try:
        async with session.begin_nested():
            provider = Provider(org=org.lower(), name=org.lower())
            session.add(provider)
    except IntegrityError:
        # Another request created it between our read and our insert.
        provider = await get_provider(session, org)
        if provider is None:
            raise
    return provider


# --- sites -----------------------------------------------------------------------------


async def get_provider_and_site(
    session: AsyncSession, org: str, site_id: uuid.UUID
) -> tuple[Provider, Site | None] | None:
    """The org's provider and the site with that id (of any provider, or None), in one
    query; None when the org has no provider."""
    result = await session.execute(
        select(Provider, Site)
        .select_from(Provider)
        .outerjoin(Site, Site.id == site_id)
        .where(Provider.org == org.lower())
    )
    row = result.first()
    return None if row is None else (row[0], row[1])


async def get_site(session: AsyncSession, site_id: uuid.UUID) -> Site | None:
    return await session.get(Site, site_id)


async def site_name_taken(
    session: AsyncSession, provider_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None = None
) -> bool:
    query = select(Site.id).where(Site.provider_id == provider_id, Site.name == name)
    if other_than is not None:
        query = query.where(Site.id != other_than)
    return (await session.execute(query.limit(1))).first() is not None


async def get_site_by_name(session: AsyncSession, provider_id: uuid.UUID, name: str) -> Site | None:
    query = select(Site).where(Site.provider_id == provider_id, Site.name == name)
    return (await session.execute(query)).scalar_one_or_none()


SITE_ORDER_FIELDS: dict[str, InstrumentedAttribute[Any]] = {
    "name": Site.name,
    "created": Site.created,
}


async def list_sites(
    session: AsyncSession, provider_id: uuid.UUID, *, flow: bool | None, page: Page
) -> tuple[list[Site], int]:
    query = select(Site).where(Site.provider_id == provider_id)
    if flow is not None:
        query = query.where(Site.flow_enabled.is_(flow))
    return await _paged(session, query, page, SITE_ORDER_FIELDS, (Site.name,), Site.id)


# --- racks -----------------------------------------------------------------------------


RACK_ORDER_FIELDS: dict[str, InstrumentedAttribute[Any]] = {
    "name": Rack.name,
    "manufacturer": Rack.manufacturer,
    "model": Rack.model,
}


async def get_rack(session: AsyncSession, site_id: uuid.UUID, rack_id: uuid.UUID) -> Rack | None:
    """The rack if it exists in this site (another site's rack reads as missing)."""
    rack = await session.get(Rack, rack_id)
    return rack if rack is not None and rack.site_id == site_id else None


async def get_rack_by_name(session: AsyncSession, site_id: uuid.UUID, name: str) -> Rack | None:
    query = select(Rack).where(Rack.site_id == site_id, Rack.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def count_racks(session: AsyncSession, site_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(Rack).where(Rack.site_id == site_id)
    return int((await session.execute(query)).scalar_one())


async def list_racks(
    session: AsyncSession,
    site_id: uuid.UUID,
    *,
    names: Sequence[str] = (),
    manufacturers: Sequence[str] = (),
    page: Page,
) -> tuple[list[Rack], int]:
    """Racks of a site; several names (or manufacturers) match any of them."""
    query = select(Rack).where(Rack.site_id == site_id)
    if names:
        query = query.where(Rack.name.in_(list(names)))
    if manufacturers:
        query = query.where(Rack.manufacturer.in_(list(manufacturers)))
    return await _paged(session, query, page, RACK_ORDER_FIELDS, (Rack.name,), Rack.id)


async def lock_rack(session: AsyncSession, rack_id: uuid.UUID) -> bool:
    """Row-lock the rack (PostgreSQL; SQLite has no row locks, callers also hold the task
    manager's rack lock) so a task submission and a rack delete run one after the other.
    False when the rack does not exist (any more)."""
    found = await session.execute(select(Rack.id).where(Rack.id == rack_id).with_for_update())
    return found.scalar_one_or_none() is not None


async def lock_racks(session: AsyncSession, rack_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """`lock_rack` for many racks in one statement; returns the ids that exist."""
    found = await session.execute(
        select(Rack.id).where(Rack.id.in_(rack_ids)).order_by(Rack.id).with_for_update()
    )
    return set(found.scalars())


async def active_task_ids(session: AsyncSession, rack_id: uuid.UUID) -> list[uuid.UUID]:
    query = (
        select(Task.id)
        .where(Task.rack_id == rack_id, Task.status.in_(NOT_FINISHED))
        .order_by(Task.created, Task.id)
    )
    return list((await session.execute(query)).scalars())


# --- trays -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TraySelector:
    """Which trays of a site (`GET /tray` filters, an operation's `filter`): every given
    field narrows (AND); empty tuples and None mean no restriction. Already validated."""

    rack_id: uuid.UUID | None = None
    rack_name: str | None = None
    type: ComponentType | None = None
    component_ids: tuple[str, ...] = ()
    ids: tuple[uuid.UUID, ...] = ()
    slot_id: int | None = None

    def names_a_rack(self) -> bool:
        return self.rack_id is not None or self.rack_name is not None


TRAY_ORDER_FIELDS: dict[str, InstrumentedAttribute[Any]] = {
    "name": Tray.name,
    "manufacturer": Tray.manufacturer,
    "model": Tray.model,
    "type": Tray.type,
}
# Physical order: rack name, slot, index, host.
_TRAY_PHYSICAL = (Rack.name, Tray.slot_id, Tray.tray_idx, Tray.host_id, Tray.name)


def _selected(site_id: uuid.UUID, selector: TraySelector) -> AnySelect:
    """The one query behind the tray list and an operation's target selection."""
    query = select(Tray, Rack).join(Rack, Rack.id == Tray.rack_id)
    query = query.where(Tray.site_id == site_id)
    if selector.rack_id is not None:
        query = query.where(Tray.rack_id == selector.rack_id)
    if selector.rack_name is not None:
        query = query.where(Rack.name == selector.rack_name)
    if selector.type is not None:
        query = query.where(Tray.type == selector.type.value)
    if selector.ids:
        query = query.where(Tray.id.in_(list(selector.ids)))
    if selector.component_ids:
        query = query.where(Tray.component_id.in_(list(selector.component_ids)))
    if selector.slot_id is not None:
        query = query.where(Tray.slot_id == selector.slot_id)
    return query


async def list_trays(
    session: AsyncSession, site_id: uuid.UUID, selector: TraySelector, page: Page
) -> tuple[list[tuple[Tray, Rack]], int]:
    """One page of the selected trays with their rack, in physical order by default."""
    query = _selected(site_id, selector)
    total = await _count(session, query)
    ordered = _ordered(query, page, TRAY_ORDER_FIELDS, _TRAY_PHYSICAL, Tray.id)
    rows = await session.execute(ordered.offset(page.offset).limit(page.limit))
    return [(tray, rack) for tray, rack in rows.all()], total


async def selected_trays(
    session: AsyncSession, site_id: uuid.UUID, selector: TraySelector
) -> list[tuple[Tray, Rack]]:
    """Every selected tray with its rack, in physical order."""
    query = _selected(site_id, selector).order_by(*_TRAY_PHYSICAL, Tray.id)
    return [(tray, rack) for tray, rack in (await session.execute(query)).all()]


async def get_tray(
    session: AsyncSession, site_id: uuid.UUID, tray_id: uuid.UUID
) -> tuple[Tray, Rack] | None:
    """A tray of this site with its rack (another site's tray reads as missing)."""
    query = (
        select(Tray, Rack)
        .join(Rack, Rack.id == Tray.rack_id)
        .where(Tray.id == tray_id, Tray.site_id == site_id)
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def trays_of_racks(
    session: AsyncSession, rack_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[Tray]]:
    """Each rack's trays in physical order."""
    ids = list(rack_ids)
    out: dict[uuid.UUID, list[Tray]] = {rack_id: [] for rack_id in ids}
    if not ids:
        return out
    query = (
        select(Tray)
        .where(Tray.rack_id.in_(ids))
        .order_by(Tray.slot_id, Tray.tray_idx, Tray.host_id, Tray.name, Tray.id)
    )
    for tray in (await session.execute(query)).scalars():
        out[tray.rack_id].append(tray)
    return out


async def bmcs_of_trays(
    session: AsyncSession, tray_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[Bmc]]:
    """Each tray's BMCs in the order they were registered."""
    ids = list(tray_ids)
    out: dict[uuid.UUID, list[Bmc]] = {tray_id: [] for tray_id in ids}
    if not ids:
        return out
    query = select(Bmc).where(Bmc.tray_id.in_(ids)).order_by(Bmc.created, Bmc.id)
    for bmc in (await session.execute(query)).scalars():
        out[bmc.tray_id].append(bmc)
    return out


async def registered_serials(
    session: AsyncSession, pairs: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (manufacturer, serial number) pairs are already taken by some tray."""
    wanted = list(set(pairs))
    if not wanted:
        return set()
    query = select(Tray.manufacturer, Tray.serial_number).where(
        tuple_(Tray.manufacturer, Tray.serial_number).in_(wanted)
    )
    return {(m, s) for m, s in (await session.execute(query)).all()}


async def rack_holding_serial(
    session: AsyncSession, provider_id: uuid.UUID, manufacturer: str, serial_number: str
) -> Rack | None:
    """The provider's rack whose tray has this serial number: a tray's identity, which
    renaming its site or rack does not change."""
    query = (
        select(Rack)
        .join(Tray, Tray.rack_id == Rack.id)
        .join(Site, Site.id == Rack.site_id)
        .where(
            Site.provider_id == provider_id,
            Tray.manufacturer == manufacturer,
            Tray.serial_number == serial_number,
        )
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def registered_macs(session: AsyncSession, macs: Iterable[str]) -> set[str]:
    """Which BMC MAC addresses are already registered."""
    wanted = list(set(macs))
    if not wanted:
        return set()
    query = select(Bmc.mac_address).where(Bmc.mac_address.in_(wanted))
    return {mac for mac in (await session.execute(query)).scalars() if mac is not None}


# --- helpers ---------------------------------------------------------------------------


async def _count(session: AsyncSession, query: AnySelect) -> int:
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    return int((await session.execute(counted)).scalar_one())


def _ordered(
    query: AnySelect,
    page: Page,
    fields: dict[str, InstrumentedAttribute[Any]],
    default: Sequence[Any],
    tie_breaker: InstrumentedAttribute[Any],
) -> AnySelect:
    if page.order_field is None:
        return query.order_by(*default, tie_breaker)
    column = fields[page.order_field]
    # Ties keep the default order, so equal values still read naturally.
    return query.order_by(column.desc() if page.descending else column.asc(), *default, tie_breaker)


async def _paged(
    session: AsyncSession,
    query: AnySelect,
    page: Page,
    fields: dict[str, InstrumentedAttribute[Any]],
    default: Sequence[Any],
    tie_breaker: InstrumentedAttribute[Any],
) -> tuple[list[Any], int]:
    total = await _count(session, query)
    ordered = _ordered(query, page, fields, default, tie_breaker)
    rows = await session.execute(ordered.offset(page.offset).limit(page.limit))
    return list(rows.scalars()), total
