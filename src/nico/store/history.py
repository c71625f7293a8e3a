"""Tray history: append observed changes and finished steps, page them newest first.

Rows are written by `nico.store.observations` (a change the state sync or a task read)
and by the engine for a finished power or firmware step (with its outcome). Pages per
tray and per rack read their `(tray_id|rack_id, at, id)` index backwards and stop after
the page, so their cost follows the page, not the years of history behind it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from nico.store.models import TrayHistory
from nico.text import truncate_utf8

# Longest value the from/to columns hold (a firmware version string).
VALUE_MAX = 128


class HistoryKind(StrEnum):
    POWER = "power"
    FIRMWARE = "firmware"


class HistorySource(StrEnum):
    SYNC = "sync"  # the worker's periodic state sync saw it
    TASK = "task"  # a task observed it, or a task's step finished


@dataclass(frozen=True)
class Origin:
    """Who saw a change: the sync, or a task (with who asked for that task)."""

    source: HistorySource
    task_id: uuid.UUID | None = None
    created_by: str | None = None


SYNC = Origin(HistorySource.SYNC)


@dataclass(frozen=True)
class HistoryEntry:
    """One `tray_history` row to append."""

    site_id: uuid.UUID
    rack_id: uuid.UUID
    tray_id: uuid.UUID
    kind: HistoryKind
    at: datetime
    source: HistorySource
    component: str | None = None
    from_value: str | None = None
    to_value: str | None = None
    task_id: uuid.UUID | None = None
    created_by: str | None = None
    outcome: str | None = None
    message: str | None = None

    @classmethod
    def of(
        cls,
        origin: Origin,
        *,
        site_id: uuid.UUID,
        rack_id: uuid.UUID,
        tray_id: uuid.UUID,
        kind: HistoryKind,
        at: datetime,
        component: str | None = None,
        from_value: str | None = None,
        to_value: str | None = None,
        outcome: str | None = None,
        message: str | None = None,
    ) -> HistoryEntry:
        return cls(
            site_id=site_id,
            rack_id=rack_id,
            tray_id=tray_id,
            kind=kind,
            at=at,
            source=origin.source,
            component=component,
            from_value=from_value,
            to_value=to_value,
            task_id=origin.task_id,
            created_by=origin.created_by,
            outcome=outcome,
            message=message,
        )


def _row(entry: HistoryEntry) -> dict[str, object]:
    row = asdict(entry)
    row["id"] = uuid.uuid4()
    row["kind"] = entry.kind.value
    row["source"] = entry.source.value
    for column in ("from_value", "to_value"):
        if row[column] is not None:
            row[column] = truncate_utf8(str(row[column]), VALUE_MAX)
    if entry.component is not None:
        row["component"] = truncate_utf8(entry.component, 256)
    if entry.created_by is not None:
        row["created_by"] = truncate_utf8(entry.created_by, 256)
    if entry.message is not None:
        row["message"] = truncate_utf8(entry.message)
    return row


async def append_history(session: AsyncSession, entries: Sequence[HistoryEntry]) -> None:
    """Append rows, many in one executemany."""
    if entries:
        await session.execute(insert(TrayHistory), [_row(e) for e in entries])


@dataclass(frozen=True)
class HistoryQuery:
    """One tray's or one rack's history (exactly one of the two), optionally one kind,
    only one site's rows (`site_id`), only rows at or after `since`."""

    tray_id: uuid.UUID | None = None
    rack_id: uuid.UUID | None = None
    kind: HistoryKind | None = None
    site_id: uuid.UUID | None = None
    since: datetime | None = None

    def __post_init__(self) -> None:
        if (self.tray_id is None) == (self.rack_id is None):
            raise ValueError("a history query names a tray or a rack")


def history_statements(
    query: HistoryQuery, *, offset: int, limit: int
) -> tuple[Select[TrayHistory], Select[int]]:
    """The page (newest first, id breaks ties) and count statements of a history list."""
    if query.tray_id is not None:
        conditions = [TrayHistory.tray_id == query.tray_id]
    else:
        conditions = [TrayHistory.rack_id == query.rack_id]
    if query.kind is not None:
        conditions.append(TrayHistory.kind == query.kind.value)
    if query.site_id is not None:
        conditions.append(TrayHistory.site_id == query.site_id)
    if query.since is not None:
        conditions.append(TrayHistory.at >= query.since)
    page = (
        select(TrayHistory)
        .where(*conditions)
        .order_by(TrayHistory.at.desc(), TrayHistory.id.desc())
        .offset(offset)
        .limit(limit)
    )
    count = select(func.count()).select_from(TrayHistory).where(*conditions)
    return page, count


async def list_history(
    session: AsyncSession, query: HistoryQuery, *, offset: int, limit: int
) -> tuple[list[TrayHistory], int]:
    """One page of history rows, newest first, and the total for the query."""
    page, count = history_statements(query, offset=offset, limit=limit)
    rows = (await session.execute(page.add_columns(count.scalar_subquery()))).all()
    if rows:
        return [row[0] for row in rows], int(rows[0][1])
    return [], int((await session.execute(count)).scalar_one())


# --- retention ------------------------------------------------------------------------


def racks_with_history_before_statement(cutoff: datetime) -> Select[uuid.UUID]:
    """The racks (gone ones too: history outlives them) that have rows older than
    `cutoff`, over the `(rack_id, at, id)` index: a recursive skip scan visits each rack
    once and reads its oldest row, so it costs the racks, not the rows. There is no
    index on `at` alone on purpose: PostgreSQL chose one for rack pages."""
    # ORDER BY ... LIMIT 1 rather than MIN: PostgreSQL has no min(uuid). The first step
    # is a range from the smallest uuid too, so each step is an index seek.
    first = (
        select(TrayHistory.rack_id)
        .where(TrayHistory.rack_id >= uuid.UUID(int=0))
        .order_by(TrayHistory.rack_id)
        .limit(1)
    )
    racks = select(first.scalar_subquery().label("rack_id")).cte("racks", recursive=True)
    following = (
        select(TrayHistory.rack_id)
        .where(TrayHistory.rack_id > racks.c.rack_id)
        .order_by(TrayHistory.rack_id)
        .limit(1)
        .scalar_subquery()
    )
    racks = racks.union_all(select(following).where(racks.c.rack_id.is_not(None)))
    oldest = (
        select(func.min(TrayHistory.at))
        .where(TrayHistory.rack_id == racks.c.rack_id)
        .scalar_subquery()
    )
    return select(racks.c.rack_id).where(racks.c.rack_id.is_not(None), oldest < cutoff)


def oldest_rack_rows_statement(
    rack_id: uuid.UUID, *, before: datetime, limit: int
) -> Select[uuid.UUID]:
    """Ids of up to `limit` of the rack's rows older than `before`, oldest first: one
    range of the `(rack_id, at, id)` index."""
    return (
        select(TrayHistory.id)
        .where(TrayHistory.rack_id == rack_id, TrayHistory.at < before)
        .order_by(TrayHistory.rack_id, TrayHistory.at)
        .limit(limit)
    )


async def racks_with_history_before(session: AsyncSession, cutoff: datetime) -> list[uuid.UUID]:
    """See `racks_with_history_before_statement`."""
    statement = racks_with_history_before_statement(cutoff)
    return list((await session.execute(statement)).scalars())


async def prune_rack_history(
    session: AsyncSession, rack_id: uuid.UUID, *, before: datetime, limit: int
) -> int:
    """Delete up to `limit` of the rack's rows older than `before`, oldest first (see
    `oldest_rack_rows_statement`), by id. Returns how many went."""
    statement = oldest_rack_rows_statement(rack_id, before=before, limit=limit)
    ids = list((await session.execute(statement)).scalars())
    if ids:
        await session.execute(
            delete(TrayHistory).where(TrayHistory.id.in_(ids)),
            execution_options={"synchronize_session": False},
        )
    return len(ids)
