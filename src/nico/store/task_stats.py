"""Task counts shown on racks and trays (`taskStats`): how many tasks wait to run and how
many run now; and the tasks the power and firmware reads show (desired state, tasks in
flight). The counts read the small partial index of not-finished tasks
(`ix_tasks_site_rack_active`), so a rack list pays for its racks' open tasks, never for
their history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from nico.domain import OperationType, TaskStatus
from nico.store.models import ACTIVE_TASK_SQL, Task, TaskTray, Tray

# The partial index's predicate, word for word (see models.ACTIVE_TASK_SQL).
_OPEN = text(f"tasks.{ACTIVE_TASK_SQL}")
# Accepted but not running yet: dispatched (Pending) or queued behind another (Waiting).
PENDING = frozenset({TaskStatus.PENDING.value, TaskStatus.WAITING.value})


@dataclass(frozen=True)
class TaskStats:
    pending: int = 0
    active: int = 0


def _tally(rows: Sequence[tuple[uuid.UUID, str, int]]) -> dict[uuid.UUID, TaskStats]:
    out: dict[uuid.UUID, TaskStats] = {}
    for key, status, count in rows:
        stats = out.get(key, TaskStats())
        if status in PENDING:
            stats = TaskStats(stats.pending + count, stats.active)
        else:
            stats = TaskStats(stats.pending, stats.active + count)
        out[key] = stats
    return out


async def rack_task_stats(
    session: AsyncSession, site_id: uuid.UUID, rack_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, TaskStats]:
    """Per rack (absent: no open task), one query."""
    if not rack_ids:
        return {}
    rows = await session.execute(
        select(Task.rack_id, Task.status, func.count())
        .where(Task.site_id == site_id, Task.rack_id.in_(list(set(rack_ids))), _OPEN)
        .group_by(Task.rack_id, Task.status)
    )
    return _tally([(r, s, int(c)) for r, s, c in rows.all()])


async def tray_task_stats(
    session: AsyncSession, site_id: uuid.UUID, trays: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> dict[uuid.UUID, TaskStats]:
    """Per tray of (tray id, rack id) pairs (absent: no open task targets it), one query:
    the racks' open tasks, each probed for the tray's link by primary key."""
    if not trays:
        return {}
    tray_ids = list({t for t, _ in trays})
    rack_ids = list({r for _, r in trays})
    rows = await session.execute(
        select(TaskTray.tray_id, Task.status, func.count())
        .join(TaskTray, TaskTray.task_id == Task.id)
        .where(
            Task.site_id == site_id,
            Task.rack_id.in_(rack_ids),
            _OPEN,
            TaskTray.tray_id.in_(tray_ids),
        )
        .group_by(TaskTray.tray_id, Task.status)
    )
    return _tally([(t, s, int(c)) for t, s, c in rows.all()])


# --- tasks the power and firmware reads show (desired state, tasks in flight) ---------

POWER = OperationType.POWER_CONTROL.value


@dataclass(frozen=True)
class TaskRow:
    """The columns of a task the power and firmware reads show."""

    id: uuid.UUID
    status: str
    operation_code: str
    information: dict[str, Any]
    targets: dict[str, Any]
    created: datetime
    started: datetime | None

    def targets_tray(self, tray_id: uuid.UUID) -> bool:
        wanted = str(tray_id)
        return any(wanted in (str(t) for t in ids) for ids in self.targets.values())


_TASK_COLUMNS = (
    Task.id,
    Task.status,
    Task.operation_code,
    Task.information,
    Task.targets,
    Task.created,
    Task.started,
)


def _rows(result: Any) -> list[TaskRow]:
    return [TaskRow(*row) for row in result.all()]


async def open_tasks(
    session: AsyncSession, site_id: uuid.UUID, rack_id: uuid.UUID, operation_type: str
) -> list[TaskRow]:
    """The rack's tasks of `operation_type` not finished yet, oldest first (the partial
    index): the power reads' and the firmware reads' tasks in flight."""
    result = await session.execute(
        select(*_TASK_COLUMNS)
        .where(
            Task.site_id == site_id,
            Task.rack_id == rack_id,
            _OPEN,
            Task.operation_type == operation_type,
        )
        .order_by(Task.created, Task.id)
    )
    return _rows(result)


async def last_power_tasks(
    session: AsyncSession, site_id: uuid.UUID, tray_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, TaskRow]:
    """Each tray's newest power task (absent: none), one statement for any number of
    trays: per tray, its task links newest first (`ix_task_trays_tray_site_created`) up
    to the first power task, so a rack read and a tray read pick the same task however
    old it is and however many tasks the rack ran since."""
    if not tray_ids:
        return {}
    wanted = list(set(tray_ids))
    newest = (
        select(TaskTray.task_id)
        .join(Task, Task.id == TaskTray.task_id)
        .where(
            TaskTray.tray_id == Tray.id,
            TaskTray.site_id == site_id,
            Task.operation_type == POWER,
        )
        .order_by(TaskTray.created.desc(), TaskTray.task_id.desc())
        .limit(1)
        .correlate(Tray)
        .scalar_subquery()
    )
    pairs = select(Tray.id.label("tray_id"), newest.label("task_id")).where(Tray.id.in_(wanted))
    picked = pairs.subquery()
    result = await session.execute(
        select(picked.c.tray_id, *_TASK_COLUMNS).join(Task, Task.id == picked.c.task_id)
    )
    return {row[0]: TaskRow(*row[1:]) for row in result.all()}


async def last_tray_power_task(
    session: AsyncSession, site_id: uuid.UUID, tray_id: uuid.UUID
) -> TaskRow | None:
    """The newest power task that targeted the tray (the rack read's query, one tray)."""
    return (await last_power_tasks(session, site_id, [tray_id])).get(tray_id)
