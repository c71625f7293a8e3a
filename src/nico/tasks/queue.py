"""The per-rack waiting queue: expiry and FIFO promotion.

`promote_rack` runs whenever a task of the rack finishes (workflow end, dispatch failure,
cancel) and from the periodic sweep. Under the rack lock it terminates every expired
entry (wherever it stands in the queue), then promotes Waiting tasks oldest first and
stops at the first that still conflicts (head-of-line: no later Waiting task passes it).
A new submission is checked against the Waiting tasks too, so it never overtakes a
queued task it conflicts with (it is rejected or queues behind it). The rule is resolved
at promotion; if that fails (for example a pinned rule was deleted while the task
waited) the task fails with the reason instead of staying Pending forever.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from nico.domain import TaskStatus
from nico.engine.infra import classify
from nico.errors import NicoError
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.models import Task, utcnow
from nico.tasks.conflicts import TaskFootprint, first_conflict
from nico.tasks.dispatch import Dispatch, choose_rule, dispatch_task
from nico.tasks.locks import locked_racks

log = logging.getLogger("nico.tasks")

QUEUED = "Queued: waiting for rack to become available"
PROMOTED = "Promoted: no conflicting active tasks"
EXPIRED = "Expired: queue timeout reached"


def footprint(task: Task) -> TaskFootprint:
    return TaskFootprint.of(task.operation_type, task.targets, task.id)


async def _promote_once(
    services: Services, rack_id: uuid.UUID, now: datetime
) -> tuple[list[uuid.UUID], bool]:
    """One locked pass: expire, promote. Returns promoted ids and whether any promoted
    task failed at rule resolution (which frees the rack for another pass)."""
    promoted: list[uuid.UUID] = []
    failed = False
    async with locked_racks(services.db, [rack_id]) as session:
        waiting = await task_store.rack_tasks(session, rack_id, (TaskStatus.WAITING.value,))
        if not waiting:
            return [], False
        active = [
            footprint(t)
            for t in await task_store.rack_tasks(session, rack_id, task_store.ACTIVE_FOR_CONFLICTS)
        ]
        # Expire every entry first: one behind a blocked head must not outstay its
        # queueTimeout, hold a queue slot or block a new submission.
        for task in waiting:
            if task.queue_expires_at is not None and task.queue_expires_at <= now:
                await task_store.transition_task(
                    session,
                    task.id,
                    TaskStatus.TERMINATED,
                    message=EXPIRED,
                    expected=TaskStatus.WAITING,
                    now=now,
                )
        waiting = [t for t in waiting if t.queue_expires_at is None or t.queue_expires_at > now]
        for task in waiting:
            candidate = footprint(task)
            if first_conflict(candidate, active) is not None:
                break
            try:
                choice = await choose_rule(
                    session,
                    site_id=task.site_id,
                    rack_id=task.rack_id,
                    operation_type=task.operation_type,
                    operation_code=task.operation_code,
                    pinned_rule_id=task.pinned_rule_id,
                )
            except NicoError as exc:
                # Waiting -> Pending -> Failed, each step only from where this pass left it
                # (a concurrent cancel of the Waiting task wins).
                left = await task_store.transition_task(
                    session, task.id, TaskStatus.PENDING, expected=TaskStatus.WAITING, now=now
                )
                if left:
                    await task_store.transition_task(
                        session,
                        task.id,
                        TaskStatus.FAILED,
                        message="Rule resolution failed when the task left the queue: "
                        f"{exc.message}",
                        expected=TaskStatus.PENDING,
                        now=now,
                    )
                    failed = True
                continue
            moved = await task_store.transition_task(
                session,
                task.id,
                TaskStatus.PENDING,
                message=PROMOTED,
                expected=TaskStatus.WAITING,
                now=now,
                extra=choice.columns(),
            )
            if moved:
                promoted.append(task.id)
                active.append(candidate)
    return promoted, failed


async def promote_rack(services: Services, rack_id: uuid.UUID) -> list[uuid.UUID]:
    """Expire and promote the rack's queue, then dispatch what was promoted.

    When Temporal is unreachable the promoted tasks stay Pending (they hold the rack) for
    the reconciler, and promotion stops: nothing more is promoted into the outage.
    """
    all_promoted: list[uuid.UUID] = []
    while True:
        promoted, failed = await _promote_once(services, rack_id, utcnow())
        all_promoted.extend(promoted)
        freed = failed
        for task_id in promoted:
            outcome = await dispatch_task(services, task_id)
            if outcome is Dispatch.DEFERRED:
                return all_promoted
            if outcome is Dispatch.FAILED:
                freed = True
        if not freed:
            return all_promoted


async def sweep_queues(services: Services) -> int:
    """Promote/expire every rack that has Waiting tasks; returns how many were promoted."""
    async with services.db.session() as session:
        racks = await task_store.racks_with_waiting(session)
    count = 0
    for rack_id in racks:
        try:
            count += len(await promote_rack(services, rack_id))
        except Exception as exc:
            if classify(exc) is not None:
                raise  # an outage: the whole sweep waits for its next pass
            log.exception("queue sweep of rack %s failed", rack_id)
    return count
