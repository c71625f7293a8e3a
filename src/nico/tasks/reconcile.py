"""The reconciler: no task stays Pending or Running when its workflow cannot finish it.

Upstream leaves such tasks stuck forever. Each pass looks at every Pending/Running task
untouched for longer than the grace period:
- Pending and never dispatched (the API died between commit and start, or had no
  Temporal client) -> dispatched now, 16 starts at a time (`nico.tasks.fanout`);
- workflow closed (completed, failed, timed out, terminated, cancelled) while the task is
  not finished -> Failed, naming how the workflow ended;
- workflow missing (Temporal lost its history) -> Failed, "workflow not found".
Its report's running stage is failed with the same message, so it stops showing progress.
Every status write is compare-and-set, so a workflow finishing at the same moment wins.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nico.domain import TaskStatus
from nico.engine.client import WorkflowState, task_workflow_state
from nico.engine.infra import classify
from nico.engine.report import finalize_cancelled
from nico.metrics import RECONCILER_ACTIONS
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.models import utcnow
from nico.tasks.dispatch import Dispatch
from nico.tasks.fanout import dispatch_chunks
from nico.tasks.queue import promote_rack

log = logging.getLogger("nico.tasks")

_STILL_RUNNING = {"RUNNING", "CONTINUED_AS_NEW"}


@dataclass
class ReconcileResult:
    """What one pass did, by task id."""

    dispatched: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)


def state_label(state: WorkflowState) -> str:
    """`TIMED_OUT` -> `TimedOut`, the way Temporal's UI names a closed workflow."""
    return "".join(part.capitalize() for part in state.name.split("_"))


def closed_message(task_id: uuid.UUID, state: WorkflowState) -> str:
    if state.name == "MISSING":
        return f"Workflow {task_id} not found: the task can no longer finish (reconciler)"
    return (
        f"Workflow {task_id} ended ({state_label(state)}) without finishing the task (reconciler)"
    )


async def reconcile(
    services: Services, *, now: datetime | None = None, grace: float | None = None
) -> ReconcileResult:
    """One reconciler pass over every Pending/Running task."""
    result = ReconcileResult()
    client = services.temporal
    if client is None:
        return result
    now = now or utcnow()
    cutoff = now - timedelta(seconds=services.settings.reconcile_grace if grace is None else grace)
    async with services.db.session() as session:
        tasks = await task_store.unfinished_tasks(session, updated_before=cutoff)
    orphans = [t for t in tasks if t.status is TaskStatus.PENDING and t.workflow_id is None]
    if orphans:
        # Started DISPATCH_CHUNK at a time, like a bulk submission (a crash mid-dispatch
        # of 100 racks leaves up to 100 behind); a failed start fails its task and
        # frees its rack's queue there.
        try:
            outcomes = await dispatch_chunks(services, [(t.id, t.rack_id) for t in orphans])
        except Exception:
            log.exception("dispatching %d Pending task(s) failed", len(orphans))
            outcomes = {}
        for task in orphans:
            outcome = outcomes.get(task.id)
            if outcome is Dispatch.STARTED:
                result.dispatched.append(task.id)
                RECONCILER_ACTIONS.labels("dispatched").inc()
            elif outcome is Dispatch.FAILED:
                result.failed.append(task.id)
                RECONCILER_ACTIONS.labels("failed").inc()
        if Dispatch.DEFERRED in outcomes.values():
            return result  # Temporal unreachable: the next pass tries again
    for task in tasks:
        status = task.status
        if status is TaskStatus.PENDING and task.workflow_id is None:
            continue
        try:
            state = await task_workflow_state(client, str(task.id))
            if state.name in _STILL_RUNNING:
                continue
            message = closed_message(task.id, state)
            async with services.db.session() as session:
                report = await task_store.task_report(session, task.id)
                changed = await task_store.transition_task(
                    session,
                    task.id,
                    TaskStatus.FAILED,
                    message=message,
                    expected=status,
                    report=finalize_cancelled(report, now, message),
                )
            if changed:
                log.warning("reconciler failed task %s: workflow %s", task.id, state.name)
                RECONCILER_ACTIONS.labels("failed").inc()
                result.failed.append(task.id)
                await promote_rack(services, task.rack_id)
        except Exception as exc:
            if classify(exc) is not None:
                raise  # an outage: the whole pass waits for the next one
            log.exception("reconciling task %s failed", task.id)
    return result
