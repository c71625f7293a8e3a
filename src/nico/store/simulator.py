"""Simulated hardware state: one `sim_tray_state` row per tray, plus injected faults.

Rows are created lazily (power Off, firmware = the tray's inventory version or 1.0.0).
Transitions are stored as "target + ready at" timestamps and settled when read, so a
restarted worker sees exactly where every tray is without any timer of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nico.domain import ComponentType
from nico.store.models import SimFault, SimTrayState, Tray

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
        }
        for t in trays
    ]
    bind = session.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(SimTrayState).values(rows).on_conflict_do_nothing())


async def lock_state(session: AsyncSession, tray: Tray) -> SimTrayState:
    """The tray's state row, created if missing, locked for update until commit."""
    await ensure_states(session, [tray])
    result = await session.execute(
        select(SimTrayState)
        .where(SimTrayState.tray_id == tray.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one()


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


async def matching_faults(
    session: AsyncSession, tray: Tray, kinds: Sequence[FaultKind], now: datetime
) -> list[SimFault]:
    """Live faults of these kinds aimed at this tray, its component type, or its whole site."""
    result = await session.execute(
        select(SimFault)
        .where(
            SimFault.site_id == tray.site_id,
            SimFault.kind.in_([k.value for k in kinds]),
            or_(SimFault.tray_id.is_(None), SimFault.tray_id == tray.id),
            or_(SimFault.component_type.is_(None), SimFault.component_type == tray.type),
            or_(SimFault.expires_at.is_(None), SimFault.expires_at > now),
            or_(SimFault.remaining.is_(None), SimFault.remaining > 0),
        )
        .order_by(SimFault.created, SimFault.id)
    )
    return list(result.scalars().all())


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
