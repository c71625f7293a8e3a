"""Task rows: compare-and-set status transitions and report writes.

Every status change goes through `transition_task`, which only moves a task along an
edge of `ALLOWED_TASK_TRANSITIONS`; a late writer (a cancelled workflow's last activity,
a racing promoter) changes nothing and learns so from the return value.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, update
from sqlalchemy.ext.asyncio import AsyncSession

from nico.domain import ALLOWED_TASK_TRANSITIONS, TaskStatus
from nico.store.models import Task, utcnow

MESSAGE_MAX_BYTES = 512


def truncate_utf8(text: str, limit: int = MESSAGE_MAX_BYTES) -> str:
    """Cut to at most `limit` bytes without splitting a UTF-8 character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


def sources_of(target: TaskStatus) -> list[str]:
    """Statuses from which `target` may be reached."""
    return [s.value for s, nexts in ALLOWED_TASK_TRANSITIONS.items() if target in nexts]


async def transition_task(
    session: AsyncSession,
    task_id: uuid.UUID,
    target: TaskStatus,
    *,
    message: str | None = None,
    report: dict[str, Any] | None = None,
    expected: TaskStatus | None = None,
    now: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Move the task to `target` if its current status allows it (or equals `expected`).

    Sets `started` on Running and `finished` on a terminal status. Returns whether the
    row changed; False means another writer got there first.
    """
    now = now or utcnow()
    allowed = [expected.value] if expected is not None else sources_of(target)
    if expected is not None and target not in ALLOWED_TASK_TRANSITIONS[expected]:
        raise ValueError(f"{expected} -> {target} is not a task transition")
    values: dict[str, Any] = {"status": target.value, "updated": now}
    if message is not None:
        values["message"] = truncate_utf8(message)
    if report is not None:
        values["report"] = report
    if target is TaskStatus.RUNNING:
        values["started"] = now
    if target.finished:
        values["finished"] = now
    if extra:
        values.update(extra)
    result = await session.execute(
        update(Task).where(Task.id == task_id, Task.status.in_(allowed)).values(**values)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def save_running_report(
    session: AsyncSession, task_id: uuid.UUID, report: dict[str, Any], message: str | None = None
) -> bool:
    """Write a live report snapshot; ignored once the task has left Running."""
    values: dict[str, Any] = {"report": report, "updated": utcnow()}
    if message is not None:
        values["message"] = truncate_utf8(message)
    result = await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == TaskStatus.RUNNING.value)
        .values(**values)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1
