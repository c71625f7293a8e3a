"""Submission: one task per rack, conflict check under the rack locks, then dispatch.

Every step costs a fixed number of database round trips whatever the number of racks
(one lock statement, one rule resolution, one read of the racks' tasks, one batched
insert), and dispatch starts workflows concurrently (`nico.tasks.fanout`).

A multi-rack request is all-or-nothing: every rack is checked in one transaction holding
all their locks, so a conflict on any rack answers 409 and creates no task (upstream
creates what it can and loses the reasons in its logs).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nico.domain import OperationType, TaskStatus
from nico.errors import Conflict, NotFound
from nico.services import Services
from nico.store import inventory
from nico.store import tasks as task_store
from nico.store.models import Task, utcnow
from nico.tasks import idempotency
from nico.tasks.conflicts import ConflictStrategy, first_conflict
from nico.tasks.dispatch import choose_rules
from nico.tasks.fanout import dispatch_answering_soon
from nico.tasks.idempotency import IdempotencyClaim
from nico.tasks.locks import locked_racks
from nico.tasks.queue import QUEUED, footprint
from nico.tasks.targets import RACK_NOT_FOUND, RackTargets
from nico.text import truncate_utf8

log = logging.getLogger("nico.tasks")

PENDING = "Pending"


@dataclass(frozen=True)
class OperationRequest:
    """A validated operation on a site, before it is split into per-rack tasks."""

    site_id: uuid.UUID
    operation_type: OperationType
    operation_code: str
    description: str
    info: dict[str, Any] = field(default_factory=dict)
    pinned_rule_id: uuid.UUID | None = None
    strategy: ConflictStrategy = ConflictStrategy.REJECT
    # Seconds a queued task may wait; None = NICO_QUEUE_DEFAULT_TIMEOUT.
    queue_timeout: float | None = None
    # Who asked: the token subject, recorded on each task as `created_by`.
    created_by: str | None = None


def _conflict_error(targets: RackTargets, other: Task) -> Conflict:
    return Conflict(
        f"Rack {targets.rack.name} already has a conflicting task {other.id} "
        f"({other.operation_type} {other.operation_code}, {other.status})",
        {"rackId": str(targets.rack.id), "conflictingTaskId": str(other.id)},
    )


async def _tasks_ahead(
    session: AsyncSession, rack_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Task]]:
    """What a new task of each rack must not overtake: its Pending and Running tasks,
    then its Waiting ones (oldest first), for all racks in one query. A new task that
    conflicts only with a Waiting one queues behind it (or is rejected naming it), so it
    cannot block that task later."""
    by_rack = await task_store.racks_tasks(session, rack_ids, task_store.NOT_FINISHED)
    waiting = TaskStatus.WAITING.value
    return {
        rack_id: [t for t in tasks if t.status != waiting]
        + [t for t in tasks if t.status == waiting]
        for rack_id, tasks in by_rack.items()
    }


async def submit(
    services: Services,
    request: OperationRequest,
    racks: list[RackTargets],
    claim: IdempotencyClaim | None = None,
) -> list[uuid.UUID]:
    """Create one task per rack (Pending, or Waiting when queued) and dispatch the Pending
    ones; 409 on a conflict with `reject`, on a full queue, or on a reused key."""
    try:
        task_ids, pending = await _create_tasks(services, request, racks, claim)
    except IntegrityError:
        # Only the idempotency key is unique here: a concurrent twin request won.
        if claim is None:
            raise
        async with services.db.session() as session:
            replayed = await idempotency.replay(session, claim)
        if replayed is None:
            raise
        return replayed
    await dispatch_answering_soon(services, pending)
    return task_ids


async def _create_tasks(
    services: Services,
    request: OperationRequest,
    racks: list[RackTargets],
    claim: IdempotencyClaim | None,
) -> tuple[list[uuid.UUID], list[tuple[uuid.UUID, uuid.UUID]]]:
    settings = services.settings
    now = utcnow()
    timeout = request.queue_timeout or settings.queue_default_timeout
    task_ids: list[uuid.UUID] = []
    pending: list[tuple[uuid.UUID, uuid.UUID]] = []
    rack_ids = [r.rack.id for r in racks]
    async with locked_racks(services.db, rack_ids) as session:
        if claim is not None:
            replayed = await idempotency.replay(session, claim)
            if replayed is not None:
                return replayed, []
        # Resolve first: a bad pinned rule is a 400 before any conflict is a 409.
        choices = await choose_rules(
            session,
            site_id=request.site_id,
            rack_ids=rack_ids,
            operation_type=request.operation_type.value,
            operation_code=request.operation_code,
            pinned_rule_id=request.pinned_rule_id,
        )
        # A concurrent rack delete either waits for this task and then refuses, or
        # wins and this submission answers 404.
        if await inventory.lock_racks(session, rack_ids) != set(rack_ids):
            raise NotFound(RACK_NOT_FOUND)
        ahead_by_rack = await _tasks_ahead(session, rack_ids)
        tasks: list[Task] = []
        for targets in racks:
            choice = choices[targets.rack.id]
            ahead = ahead_by_rack[targets.rack.id]
            by_id = {t.id: t for t in ahead}
            hit = first_conflict(
                targets.footprint(request.operation_type), [footprint(t) for t in ahead]
            )
            task = Task(
                site_id=request.site_id,
                rack_id=targets.rack.id,
                operation_type=request.operation_type.value,
                operation_code=request.operation_code,
                description=request.description,
                information=request.info,
                targets=targets.targets_map(),
                pinned_rule_id=request.pinned_rule_id,
                conflict_strategy=request.strategy.value,
                created_by=truncate_utf8(request.created_by, 256) if request.created_by else None,
                created=now,
                updated=now,
            )
            if hit is None:
                task.status, task.message = TaskStatus.PENDING.value, PENDING
                for column, value in choice.columns().items():
                    setattr(task, column, value)
            elif request.strategy is ConflictStrategy.REJECT:
                assert hit.task_id is not None
                raise _conflict_error(targets, by_id[hit.task_id])
            else:
                waiting = sum(t.status == TaskStatus.WAITING.value for t in ahead)
                if waiting >= settings.queue_max_per_rack:
                    raise Conflict(
                        f"Rack {targets.rack.name} waiting queue is full "
                        f"({waiting}/{settings.queue_max_per_rack} tasks)",
                        {"rackId": str(targets.rack.id)},
                    )
                task.status, task.message = TaskStatus.WAITING.value, QUEUED
                task.queue_expires_at = now + timedelta(seconds=timeout)
            task.id = uuid.uuid4()
            tasks.append(task)
            task_ids.append(task.id)
            if hit is None:
                pending.append((task.id, targets.rack.id))
        await task_store.add_tasks(session, tasks)
        if claim is not None:
            await idempotency.remember(session, claim, task_ids)
    return task_ids, pending
