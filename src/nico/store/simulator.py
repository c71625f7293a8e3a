"""Simulated hardware state: one `sim_tray_state` row per tray, plus injected faults.

Rows are created lazily (power Off, firmware = the tray's inventory version or 1.0.0).
Transitions are stored as "target + ready at" timestamps and settled when read, so a
restarted worker sees exactly where every tray is without any timer of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, CursorResult, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nico.domain import ComponentType
from nico.store.models import Rack, SimFault, SimTrayState, Tray

DEFAULT_SIM_FIRMWARE = "1.0.0"


class FaultKind(StrEnum):
    """What an injected fault does to the trays it matches (see docs/engine.md)."""

    UNREACHABLE = "unreachable"  # every BMC call fails: "BMC unreachable (injected fault)"
    POWER_FAIL = "power_fail"  # a power command is rejected
    POWER_STUCK = "power_stuck"  # a power command is accepted but the state never changes
    FIRMWARE_FAIL = "firmware_fail"  # a firmware update runs, then ends Failed
    FIRMWARE_HANG = "firmware_hang"  # a firmware update never finishes
    SLOW = "slow"  # every call takes `slow_seconds` longer


async def ensure_states(session: AsyncSession, trays: Sequence[Tray]) -> None:
    """Create missing state rows (idempotent, safe under concurrent callers)."""
    if not trays:
        return
    rows = [
        {
            "tray_id": t.id,
            "power_on": False,
            "firmware_version": t.firmware_version or DEFAULT_SIM_FIRMWARE,
            "firmware_failed": False,
            "bring_up_open": False,
            "expectation_injected": False,
            "power_ops": 0,
            "power_cycles": 0,
        }
        for t in trays
    ]
    bind = session.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(SimTrayState).values(rows).on_conflict_do_nothing())


async def lock_state(session: AsyncSession, tray: Tray) -> SimTrayState:
    """The tray's state row, created if missing, locked for update until commit."""
    return (await lock_states(session, [tray]))[tray.id]


async def lock_states(
    session: AsyncSession, trays: Sequence[Tray]
) -> dict[uuid.UUID, SimTrayState]:
    """The trays' state rows, created if missing, locked for update until commit (the
    insert comes first, so SQLite takes its write lock before anything is read)."""
    unique = list({t.id: t for t in trays}.values())
    await ensure_states(session, unique)
    result = await session.execute(
        select(SimTrayState)
        .where(SimTrayState.tray_id.in_([t.id for t in unique]))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {s.tray_id: s for s in result.scalars().all()}


async def read_states(
    session: AsyncSession, trays: Sequence[Tray]
) -> dict[uuid.UUID, SimTrayState]:
    """The trays' state rows; a missing one is created (only the first time a tray is
    read, so a poll writes nothing)."""
    states = await get_states(session, list({t.id for t in trays}))
    missing = {t.id: t for t in trays if t.id not in states}
    if missing:
        await ensure_states(session, list(missing.values()))
        states.update(await get_states(session, list(missing)))
    return states


def transition_due(state: SimTrayState, now: datetime) -> bool:
    """Whether a power transition in flight has completed by `now`."""
    return (
        state.power_target is not None
        and state.power_ready_at is not None
        and state.power_ready_at <= now
    )


def powered_at(state: SimTrayState, now: datetime) -> bool:
    """Whether the tray is On at `now` (a transition counts once it has completed)."""
    if transition_due(state, now):
        return bool(state.power_target)
    return state.power_on


def settle(state: SimTrayState, now: datetime) -> None:
    """Apply a power transition whose time has come (firmware jobs settle on read)."""
    if transition_due(state, now):
        state.power_on = bool(state.power_target)
        state.power_target = None
        state.power_ready_at = None


async def shelves_on(session: AsyncSession, rack_id: uuid.UUID, now: datetime) -> tuple[int, int]:
    """(PowerShelf trays of the rack, how many are On now) — the rack is fed when any is.
    A shelf without a state row has never been powered: it counts as Off."""
    result = await session.execute(
        select(Tray.id, SimTrayState)
        .outerjoin(SimTrayState, SimTrayState.tray_id == Tray.id)
        .where(Tray.rack_id == rack_id, Tray.type == ComponentType.POWERSHELF.value)
    )
    shelves = 0
    on = 0
    for _, state in result.all():
        shelves += 1
        if state is None:
            continue
        on += int(powered_at(state, now))
    return shelves, on


async def fed_trays(session: AsyncSession, rack_id: uuid.UUID) -> list[Tray]:
    """The Compute and NVLSwitch trays of a rack: what its power shelves feed."""
    fed = (ComponentType.COMPUTE.value, ComponentType.NVLSWITCH.value)
    result = await session.execute(
        select(Tray).where(Tray.rack_id == rack_id, Tray.type.in_(fed)).order_by(Tray.id)
    )
    return list(result.scalars())


async def racks_fed(
    session: AsyncSession, rack_ids: Collection[uuid.UUID], now: datetime
) -> dict[uuid.UUID, bool]:
    """Per rack, whether its Compute and NVLSwitch BMCs have power: any PowerShelf of
    the rack On now, or no PowerShelf at all (`shelves_on` for many racks at once)."""
    fed = {rack_id: True for rack_id in rack_ids}
    if not fed:
        return fed
    result = await session.execute(
        select(Tray.rack_id, SimTrayState)
        .outerjoin(SimTrayState, SimTrayState.tray_id == Tray.id)
        .where(Tray.rack_id.in_(list(fed)), Tray.type == ComponentType.POWERSHELF.value)
    )
    on: dict[uuid.UUID, int] = {}
    for rack_id, state in result.all():
        on[rack_id] = on.get(rack_id, 0) + int(state is not None and powered_at(state, now))
    fed.update({rack_id: count > 0 for rack_id, count in on.items()})
    return fed


async def matching_faults(
    session: AsyncSession, tray: Tray, kinds: Sequence[FaultKind], now: datetime
) -> list[SimFault]:
    """Live faults of these kinds aimed at this tray, its rack, its component type, or its
    whole site."""
    result = await session.execute(
        select(SimFault)
        .where(
            SimFault.site_id == tray.site_id,
            SimFault.kind.in_([k.value for k in kinds]),
            or_(SimFault.rack_id.is_(None), SimFault.rack_id == tray.rack_id),
            or_(SimFault.tray_id.is_(None), SimFault.tray_id == tray.id),
            or_(SimFault.component_type.is_(None), SimFault.component_type == tray.type),
            or_(SimFault.expires_at.is_(None), SimFault.expires_at > now),
            or_(SimFault.remaining.is_(None), SimFault.remaining > 0),
        )
        .order_by(SimFault.created, SimFault.id)
    )
    return list(result.scalars().all())


# Kinds that act on every call to the tray (not only on a power or firmware command): a
# limited one spends a firing on each call it affects.
PER_CALL_KINDS = frozenset({FaultKind.UNREACHABLE.value, FaultKind.SLOW.value})


async def faults_for_call(session: AsyncSession, tray: Tray, now: datetime) -> list[SimFault]:
    """The tray's live faults for one backend call; limited per-call faults fire here."""
    found = await matching_faults(session, tray, list(FaultKind), now)
    return [f for f in found if f.kind not in PER_CALL_KINDS or await consume_fault(session, f)]


async def faults_for_calls(
    session: AsyncSession, trays: Sequence[Tray], now: datetime
) -> list[list[SimFault]]:
    """`faults_for_call` for many calls at once (one per entry of `trays`, in order): one
    query for the live faults of their sites, matched per tray as `matching_faults`
    does; limited per-call faults fire once per call, in order, while firings last."""
    sites = list({t.site_id for t in trays})
    if not sites:
        return []
    result = await session.execute(
        select(SimFault)
        .where(
            SimFault.site_id.in_(sites),
            or_(SimFault.expires_at.is_(None), SimFault.expires_at > now),
            or_(SimFault.remaining.is_(None), SimFault.remaining > 0),
        )
        .order_by(SimFault.created, SimFault.id)
    )
    live = list(result.scalars().all())
    out: list[list[SimFault]] = []
    for tray in trays:
        found = [f for f in live if _aimed_at(f, tray)]
        out.append(
            [f for f in found if f.kind not in PER_CALL_KINDS or await consume_fault(session, f)]
        )
    return out


def _aimed_at(fault: SimFault, tray: Tray) -> bool:
    return (
        fault.site_id == tray.site_id
        and (fault.rack_id is None or fault.rack_id == tray.rack_id)
        and (fault.tray_id is None or fault.tray_id == tray.id)
        and (fault.component_type is None or fault.component_type == tray.type)
    )


async def consume_fault(session: AsyncSession, fault: SimFault) -> bool:
    """Count one firing of a fault; False when a limited fault has no firing left."""
    if fault.remaining is None:
        return True
    result = await session.execute(
        update(SimFault)
        .where(and_(SimFault.id == fault.id, SimFault.remaining > 0))
        .values(remaining=SimFault.remaining - 1)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def get_states(
    session: AsyncSession, tray_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SimTrayState]:
    """State rows that exist for these trays (tests and the fault-drill API read these)."""
    result = await session.execute(select(SimTrayState).where(SimTrayState.tray_id.in_(tray_ids)))
    return {s.tray_id: s for s in result.scalars().all()}


# --- fault drills: what the simulator fault API reads and writes ------------------------


def _live(now: datetime) -> ColumnElement[bool]:
    """A fault that can still fire: not expired, not spent."""
    return and_(
        or_(SimFault.expires_at.is_(None), SimFault.expires_at > now),
        or_(SimFault.remaining.is_(None), SimFault.remaining > 0),
    )


def _scoped(
    site_id: uuid.UUID, rack_id: uuid.UUID | None, tray_id: uuid.UUID | None
) -> list[ColumnElement[bool]]:
    where = [SimFault.site_id == site_id]
    if rack_id is not None:
        where.append(SimFault.rack_id == rack_id)
    if tray_id is not None:
        where.append(SimFault.tray_id == tray_id)
    return where


async def add_faults(session: AsyncSession, faults: Sequence[SimFault]) -> None:
    """Store new faults (ids and creation times filled in)."""
    session.add_all(faults)
    await session.flush()


async def list_live_faults(
    session: AsyncSession,
    site_id: uuid.UUID,
    now: datetime,
    *,
    rack_id: uuid.UUID | None = None,
    tray_id: uuid.UUID | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[tuple[SimFault, str | None]], int]:
    """Faults of a site that can still fire, oldest first, with their tray's name, and
    how many there are in all. `rack_id` / `tray_id` keep faults aimed at that rack/tray."""
    where = [*_scoped(site_id, rack_id, tray_id), _live(now)]
    total = (
        await session.execute(select(func.count()).select_from(SimFault).where(*where))
    ).scalar_one()
    # Faults made by one request share `created`: they list in the order it answered.
    query = (
        select(SimFault, Tray.name)
        .outerjoin(Tray, Tray.id == SimFault.tray_id)
        .outerjoin(Rack, Rack.id == SimFault.rack_id)
        .where(*where)
        .order_by(SimFault.created, Rack.name, Tray.name, SimFault.id)
        .offset(offset)
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    return [(fault, name) for fault, name in rows], int(total)


async def delete_faults(
    session: AsyncSession,
    site_id: uuid.UUID,
    *,
    rack_id: uuid.UUID | None = None,
    tray_id: uuid.UUID | None = None,
) -> int:
    """Clear a site's faults (live or spent), optionally only those aimed at a rack/tray."""
    result = await session.execute(delete(SimFault).where(*_scoped(site_id, rack_id, tray_id)))
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def delete_fault(session: AsyncSession, site_id: uuid.UUID, fault_id: uuid.UUID) -> bool:
    """Clear one fault of the site; False when the site has no such fault."""
    result = await session.execute(
        delete(SimFault).where(SimFault.site_id == site_id, SimFault.id == fault_id)
    )
    assert isinstance(result, CursorResult)
    return bool(result.rowcount)


async def trays_in_scope(
    session: AsyncSession,
    site_id: uuid.UUID,
    *,
    tray_ids: Sequence[uuid.UUID] | None = None,
    rack_id: uuid.UUID | None = None,
    component_type: str | None = None,
) -> list[tuple[Tray, Rack]]:
    """The site's trays a fault scope covers, with their racks."""
    query = select(Tray, Rack).join(Rack, Rack.id == Tray.rack_id).where(Tray.site_id == site_id)
    if tray_ids is not None:
        query = query.where(Tray.id.in_(list(tray_ids)))
    if rack_id is not None:
        query = query.where(Tray.rack_id == rack_id)
    if component_type is not None:
        query = query.where(Tray.type == component_type)
    rows = await session.execute(query.order_by(Rack.name, Tray.name, Tray.id))
    return [(tray, rack) for tray, rack in rows.all()]


async def site_backend_choices(
    session: AsyncSession, site_id: uuid.UUID
) -> set[tuple[str | None, str | None]]:
    """The distinct (tray backend, rack backend) pairs of a site's trays (empty: no trays)."""
    query = (
        select(Tray.backend, Rack.backend)
        .join(Rack, Rack.id == Tray.rack_id)
        .where(Tray.site_id == site_id)
        .distinct()
    )
    return {(tray, rack) for tray, rack in (await session.execute(query)).all()}
