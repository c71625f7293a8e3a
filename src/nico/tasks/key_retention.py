"""Retention of the two tables that only served tasks while they could still act: the
operation ledger and the `Idempotency-Key`s (the worker's sweep, like task retention).

- **Ledger entries** guard a running task's hardware commands against a second send after
  a crash or retry. Once their task has been finished for `LEDGER_KEEP` (nothing can retry
  them then) or is gone (pruned), they go, whatever `NICO_TASK_RETENTION` says; an entry
  of a task that is not finished stays, however old.
- **Idempotency keys** replay for `replay_window`: 24 hours, or as long as
  `NICO_TASK_RETENTION` keeps tasks when that is longer (unset: tasks and keys are kept
  for good). Older keys go, except one naming a task that is not finished yet: a retried
  request still gets that task back.

Each pass walks the oldest rows (created before the cutoff) along a (created, …) index,
`MAX_BATCHES` batches of `BATCH` rows read per table, each batch its own short
transaction. Kept rows are stepped over: the next pass goes on where this one stopped
(`_Walk`), and starts over once a walk reaches the end, so a crowd of long-running tasks'
entries never stalls the walk behind them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy.ext.asyncio import AsyncSession

from nico.config import Settings
from nico.engine import ledger
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.db import Database
from nico.store.models import utcnow
from nico.tasks import idempotency

log = logging.getLogger("nico.tasks")

BATCH = 500
MAX_BATCHES = 20
# How long a finished task's ledger entries outlive it: far beyond any late attempt of a
# cancelled or terminated workflow's activity.
LEDGER_KEEP = 86400.0
# The shortest time an Idempotency-Key replays.
REPLAY_WINDOW = 86400.0

Position = TypeVar("Position")


def replay_window(settings: Settings) -> float | None:
    """Seconds an Idempotency-Key replays: 24 h, or the task retention when longer;
    None (for good) while tasks are kept for good."""
    if settings.task_retention is None:
        return None
    return max(REPLAY_WINDOW, settings.task_retention)


class _Walk(Generic[Position]):
    """Where the last pass over a table stopped, per database."""

    def __init__(self) -> None:
        self._at: WeakKeyDictionary[Database, Position] = WeakKeyDictionary()

    def start(self, db: Database) -> Position | None:
        return self._at.get(db)

    def stop(self, db: Database, at: Position | None) -> None:
        if at is None:
            self._at.pop(db, None)
        else:
            self._at[db] = at


_LEDGER_WALK: _Walk[tuple[datetime, str]] = _Walk()
_KEY_WALK: _Walk[tuple[datetime, uuid.UUID]] = _Walk()

# One batch: (session, resume after) -> (rows read, rows deleted, last position read).
Batch = Callable[[AsyncSession, Position | None], Awaitable[tuple[int, int, Position | None]]]


async def _walk(db: Database, walk: _Walk[Position], batch: Batch[Position]) -> int:
    """Run batches from where the last pass stopped, at most `MAX_BATCHES`; returns how
    many rows were deleted."""
    at, deleted = walk.start(db), 0
    for _ in range(MAX_BATCHES):
        async with db.session() as session:
            read, gone, last = await batch(session, at)
        deleted += gone
        if read < BATCH:
            walk.stop(db, None)  # the end: the next pass starts over
            return deleted
        at = last
        walk.stop(db, at)
    return deleted


Finished = dict[uuid.UUID, datetime | None]  # task id -> finish time, None: not finished


def _may_go(finished: Finished, task_id: uuid.UUID, cutoff: datetime) -> bool:
    """A task gone, or finished before `cutoff`."""
    if task_id not in finished:
        return True
    done = finished[task_id]
    return done is not None and done < cutoff


async def prune_ledger(services: Services) -> int:
    """One pass over the operation ledger; returns how many entries were deleted."""
    cutoff = utcnow() - timedelta(seconds=LEDGER_KEEP)

    async def batch(
        session: AsyncSession, after: tuple[datetime, str] | None
    ) -> tuple[int, int, tuple[datetime, str] | None]:
        rows = await ledger.oldest(session, before=cutoff, after=after, limit=BATCH)
        owners = {key: ledger.task_of(key) for _, key in rows}
        finished = await task_store.finish_times(session, _known(owners.values()))
        doomed = [
            key
            for key, task_id in owners.items()
            if task_id is not None and _may_go(finished, task_id, cutoff)
        ]
        if doomed:
            await ledger.delete_entries(session, doomed)
        return len(rows), len(doomed), rows[-1] if rows else None

    deleted = await _walk(services.db, _LEDGER_WALK, batch)
    if deleted:
        log.info(
            "ledger retention: deleted %d operation ledger entries of tasks finished before %s",
            deleted,
            cutoff,
        )
    return deleted


async def prune_idempotency_keys(services: Services) -> int:
    """One pass over the Idempotency-Keys; returns how many were deleted."""
    window = replay_window(services.settings)
    if window is None:
        return 0
    cutoff = utcnow() - timedelta(seconds=window)

    async def batch(
        session: AsyncSession, after: tuple[datetime, uuid.UUID] | None
    ) -> tuple[int, int, tuple[datetime, uuid.UUID] | None]:
        rows = await idempotency.oldest(session, before=cutoff, after=after, limit=BATCH)
        named = {row.id: [_uuid(t) for t in row.task_ids] for row in rows}
        finished = await task_store.finish_times(
            session, _known(t for ids in named.values() for t in ids)
        )
        doomed = [
            key_id
            for key_id, task_ids in named.items()
            if not any(_running(finished, t) for t in task_ids)
        ]
        if doomed:
            await idempotency.delete_keys(session, doomed)
        last = (rows[-1].created, rows[-1].id) if rows else None
        return len(rows), len(doomed), last

    deleted = await _walk(services.db, _KEY_WALK, batch)
    if deleted:
        log.info("key retention: deleted %d idempotency keys stored before %s", deleted, cutoff)
    return deleted


def _running(finished: Finished, task_id: uuid.UUID | None) -> bool:
    """A task that exists and is not finished (an unreadable id counts as one, to be sure)."""
    return task_id is None or (task_id in finished and finished[task_id] is None)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _known(ids: Iterable[uuid.UUID | None]) -> list[uuid.UUID]:
    return [i for i in ids if i is not None]
