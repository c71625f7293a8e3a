"""Observed tray state: record what BMC reads said, for many trays in one call.

The state sync and the engine both read trays and both record here, so a tray shows
the newest read whoever made it. One call takes a batch of readings and costs a fixed
number of statements (lock and read the trays, upsert their observations, update the
changed tray rows, append the history), whatever the batch size.

Rules (docs/state.md):
- a good read stores the value with its time and clears the error; a failed read keeps
  the last good value and stores the error, and the tray's shown power state becomes
  `Unknown` (never a stale `On`);
- a history row is written only when a good read differs from the last good value (a
  failed read is not a change of state; the first read of a tray is its baseline);
- a reading is stamped with when its request was sent (not when it answered); one
  older than what is stored (a slow answer overtaken by a read sent later) is dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nico.domain import FirmwareComponent, PowerState
from nico.store.history import HistoryEntry, HistoryKind, Origin, append_history
from nico.store.models import Tray, TrayObservation
from nico.text import truncate_utf8

UNKNOWN = PowerState.UNKNOWN.value


async def begin_recording(session: AsyncSession) -> None:
    """Start the recording transaction. On SQLite it takes the write lock at once
    (`BEGIN IMMEDIATE`, as `nico.tasks.locks` does): a transaction that reads the trays and
    then writes would fail at once with "database is locked" if another process wrote in
    between, instead of waiting its turn. Call it first on a fresh session."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("BEGIN IMMEDIATE"))


@dataclass(frozen=True)
class PowerReading:
    """One power read of a tray: the state when it worked, else the error."""

    tray_id: uuid.UUID
    at: datetime
    state: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class FirmwareReading:
    """One firmware read of a tray: its inventory (None when the backend lists none)
    and main version when it worked, else the error."""

    tray_id: uuid.UUID
    at: datetime
    components: tuple[FirmwareComponent, ...] | None = None
    version: str | None = None
    error: str | None = None


@dataclass
class _Current:
    """A tray's stored state while a batch is applied to it."""

    site_id: uuid.UUID
    rack_id: uuid.UUID
    tray_power: str
    tray_firmware: str
    power_state: str | None
    power_observed_at: datetime | None
    power_error_at: datetime | None
    inventory: list[Any] | None
    firmware_observed_at: datetime | None
    firmware_error_at: datetime | None
    power_row: dict[str, Any] = field(default_factory=dict)
    firmware_row: dict[str, Any] = field(default_factory=dict)
    tray_row: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Row[Any]) -> _Current:
        values: list[Any] = list(row[1:])
        return cls(*values)


async def _lock_current(
    session: AsyncSession, tray_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, _Current]:
    """The trays' rows and observations, tray rows locked in id order on PostgreSQL (two
    concurrent batches then wait for each other instead of deadlocking)."""
    if not tray_ids:
        return {}
    statement = (
        select(
            Tray.id,
            Tray.site_id,
            Tray.rack_id,
            Tray.power_state,
            Tray.firmware_version,
            TrayObservation.power_state,
            TrayObservation.power_observed_at,
            TrayObservation.power_error_at,
            TrayObservation.firmware_inventory,
            TrayObservation.firmware_observed_at,
            TrayObservation.firmware_error_at,
        )
        .outerjoin(TrayObservation, TrayObservation.tray_id == Tray.id)
        .where(Tray.id.in_(sorted(set(tray_ids))))
        .order_by(Tray.id)
        .with_for_update(of=Tray)
    )
    rows = (await session.execute(statement)).all()
    return {row[0]: _Current.of(row) for row in rows}


def _stale(at: datetime, *stored: datetime | None) -> bool:
    return any(s is not None and at < s for s in stored)


def _upsert_statement(session: AsyncSession, columns: Sequence[str]) -> Any:
    """INSERT ... ON CONFLICT (tray_id) DO UPDATE of `columns`, for an executemany."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(TrayObservation)
    return statement.on_conflict_do_update(
        index_elements=["tray_id"], set_={c: statement.excluded[c] for c in columns}
    )


async def _write(
    session: AsyncSession,
    current: Mapping[uuid.UUID, _Current],
    history: list[HistoryEntry],
    which: str,
) -> None:
    """Upsert the observation rows (grouped by the columns they set), update the changed
    tray rows, append the history."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for tray_id, state in current.items():
        row = state.power_row if which == "power" else state.firmware_row
        if row:
            groups.setdefault(tuple(sorted(row)), []).append({"tray_id": tray_id, **row})
    for columns, rows in groups.items():
        await session.execute(_upsert_statement(session, columns), rows)
    trays = [{"id": tray_id, **s.tray_row} for tray_id, s in current.items() if s.tray_row]
    if trays:
        await session.execute(update(Tray), trays)
    await append_history(session, history)


def _entry(origin: Origin, state: _Current, tray_id: uuid.UUID, **values: Any) -> HistoryEntry:
    return HistoryEntry.of(
        origin, site_id=state.site_id, rack_id=state.rack_id, tray_id=tray_id, **values
    )


async def record_power(
    session: AsyncSession, readings: Sequence[PowerReading], origin: Origin
) -> list[HistoryEntry]:
    """Record power reads of many trays; returns the history rows written. Trays that no
    longer exist are skipped."""
    current = await _lock_current(session, [r.tray_id for r in readings])
    history: list[HistoryEntry] = []
    for reading in sorted(readings, key=lambda r: r.at):
        state = current.get(reading.tray_id)
        if state is None or _stale(reading.at, state.power_observed_at, state.power_error_at):
            continue
        if reading.error is None and reading.state is not None:
            before = state.power_state
            if before is None and state.tray_power != UNKNOWN:
                before = state.tray_power  # known before observations were kept
            if before is not None and before != reading.state:
                history.append(
                    _entry(
                        origin,
                        state,
                        reading.tray_id,
                        kind=HistoryKind.POWER,
                        at=reading.at,
                        from_value=before,
                        to_value=reading.state,
                    )
                )
            state.power_state, state.power_observed_at = reading.state, reading.at
            state.power_error_at = None
            state.power_row = {
                "power_state": reading.state,
                "power_observed_at": reading.at,
                "power_error": None,
                "power_error_at": None,
            }
            shown = reading.state
        else:
            state.power_error_at = reading.at
            state.power_row = {
                **{k: v for k, v in state.power_row.items() if not k.startswith("power_error")},
                "power_error": truncate_utf8(reading.error or "power state not readable"),
                "power_error_at": reading.at,
            }
            shown = UNKNOWN
        if shown != state.tray_power:
            state.tray_power = shown
            state.tray_row["power_state"] = shown
    await _write(session, current, history, "power")
    return history


def _by_key(inventory: Sequence[Any] | None) -> dict[str, FirmwareComponent] | None:
    if inventory is None:
        return None
    components = (
        c if isinstance(c, FirmwareComponent) else FirmwareComponent.from_json(c) for c in inventory
    )
    return {c.key: c for c in components}


def _firmware_changes(
    before: dict[str, FirmwareComponent], after: dict[str, FirmwareComponent]
) -> list[tuple[str, str | None, str | None]]:
    """(component name, from, to) for each component whose version changed, appeared or
    went away, in a stable order."""
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        old_version = old.version if old else None
        new_version = new.version if new else None
        if old_version != new_version:
            name = (new or old).name  # type: ignore[union-attr]
            changes.append((name, old_version, new_version))
    return changes


async def record_firmware(
    session: AsyncSession, readings: Sequence[FirmwareReading], origin: Origin
) -> list[HistoryEntry]:
    """Record firmware reads of many trays; returns the history rows written.

    With an inventory, one history row per component whose version changed since the
    last good inventory. Without one before (a tray's first inventory) or without one
    now (a backend that only reports the main version), a change of the main version is
    one row with no component."""
    current = await _lock_current(session, [r.tray_id for r in readings])
    history: list[HistoryEntry] = []
    for reading in sorted(readings, key=lambda r: r.at):
        state = current.get(reading.tray_id)
        if state is None or _stale(reading.at, state.firmware_observed_at, state.firmware_error_at):
            continue
        if reading.error is not None:
            state.firmware_error_at = reading.at
            state.firmware_row = {
                **{k: v for k, v in state.firmware_row.items() if "error" not in k},
                "firmware_error": truncate_utf8(reading.error),
                "firmware_error_at": reading.at,
            }
            continue

        before, after = _by_key(state.inventory), _by_key(reading.components)
        changes: list[tuple[str | None, str | None, str | None]] = []
        if before is not None and after is not None:
            changes.extend(_firmware_changes(before, after))
        elif reading.version and state.tray_firmware and reading.version != state.tray_firmware:
            changes.append((None, state.tray_firmware, reading.version))
        history.extend(
            _entry(
                origin,
                state,
                reading.tray_id,
                kind=HistoryKind.FIRMWARE,
                at=reading.at,
                component=component,
                from_value=old,
                to_value=new,
            )
            for component, old, new in changes
        )
        if reading.components is not None:
            inventory = [c.to_json() for c in reading.components]
            state.inventory, state.firmware_observed_at = inventory, reading.at
            state.firmware_error_at = None
            state.firmware_row = {
                "firmware_inventory": inventory,
                "firmware_observed_at": reading.at,
                "firmware_error": None,
                "firmware_error_at": None,
            }
        if reading.version and reading.version != state.tray_firmware:
            state.tray_firmware = reading.version
            state.tray_row["firmware_version"] = truncate_utf8(reading.version, 128)
    await _write(session, current, history, "firmware")
    return history


@dataclass(frozen=True)
class TrayObserved:
    """What a read endpoint shows of one tray's observed state."""

    tray_id: uuid.UUID
    power_state: str | None
    power_observed_at: datetime | None
    power_error: str | None
    power_error_at: datetime | None
    firmware_inventory: tuple[FirmwareComponent, ...] | None
    firmware_observed_at: datetime | None
    firmware_error: str | None
    firmware_error_at: datetime | None


async def observations_of(
    session: AsyncSession, tray_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, TrayObserved]:
    """Stored observations of these trays (trays never read are absent), one query."""
    if not tray_ids:
        return {}
    rows = (
        await session.execute(
            select(TrayObservation).where(TrayObservation.tray_id.in_(list(set(tray_ids))))
        )
    ).scalars()
    out = {}
    for row in rows:
        inventory = _by_key(row.firmware_inventory)
        out[row.tray_id] = TrayObserved(
            tray_id=row.tray_id,
            power_state=row.power_state,
            power_observed_at=row.power_observed_at,
            power_error=row.power_error,
            power_error_at=row.power_error_at,
            firmware_inventory=tuple(inventory.values()) if inventory is not None else None,
            firmware_observed_at=row.firmware_observed_at,
            firmware_error=row.firmware_error,
            firmware_error_at=row.firmware_error_at,
        )
    return out
