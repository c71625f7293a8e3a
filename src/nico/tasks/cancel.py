"""Cancel a task: graceful where a workflow runs, direct where none does.

- Terminated: nothing to do (idempotent).
- Succeeded / Failed: 409, a finished task cannot be cancelled.
- Waiting, or Pending before its workflow was started: Terminated at once.
- Pending / Running with a workflow: ask the workflow to cancel; it finalizes the report
  and writes Terminated itself. If it has not done so within NICO_CANCEL_WAIT seconds
  (worker down, workflow stuck), the workflow is terminated and the stored report is
  finalized here.

Either way the rack's queue is then promoted. Hardware commands already sent to a BMC
are not recalled; cancel stops everything that was not yet sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from nico.domain import TaskStatus
from nico.engine.client import cancel_task_workflow, terminate_task_workflow
from nico.errors import Conflict, NotFound, ServiceUnavailable
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.models import Task
from nico.tasks.queue import promote_rack
from nico.tasks.report import finalize_cancelled

log = logging.getLogger("nico.tasks")

CANCELLED = "Cancelled by user"
TASK_NOT_FOUND = "Task not found"


async def _load(services: Services, task_id: uuid.UUID, site_id: uuid.UUID) -> Task:
    async with services.db.session() as session:
        task = await task_store.get_task(session, task_id, site_id)
    if task is None:
        raise NotFound(TASK_NOT_FOUND)
    return task


async def _terminate_row(services: Services, task: Task, status: TaskStatus) -> bool:
    """CAS `status` -> Terminated with a finalized report."""
    async with services.db.session() as session:
        return await task_store.transition_task(
            session,
            task.id,
            TaskStatus.TERMINATED,
            message=CANCELLED,
            expected=status,
            report=finalize_cancelled(task.report),
        )


async def _wait_finished(services: Services, task: Task, wait: float) -> Task:
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        current = await _load(services, task.id, task.site_id)
        if TaskStatus(current.status).finished or time.monotonic() >= deadline:
            return current
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


async def cancel_task(
    services: Services, task_id: uuid.UUID, site_id: uuid.UUID, *, wait: float | None = None
) -> Task:
    """Cancel and return the task as it stands afterwards (report included); `wait`
    defaults to NICO_CANCEL_WAIT."""
    if wait is None:
        wait = services.settings.cancel_wait
    for _ in range(10):  # a CAS lost to a concurrent writer re-reads and decides again
        task = await _load(services, task_id, site_id)
        status = TaskStatus(task.status)
        if status is TaskStatus.TERMINATED:
            return task
        if status.finished:
            raise Conflict(
                f"task {task.id} cannot be cancelled (status: {status.value})",
                {"status": status.value},
            )
        has_workflow = task.workflow_id is not None or status is TaskStatus.RUNNING
        if status is TaskStatus.WAITING or not has_workflow:
            if await _terminate_row(services, task, status):
                await promote_rack(services, task.rack_id)
                return await _load(services, task_id, site_id)
            continue
        await _cancel_workflow(services, task, status, wait)
        await promote_rack(services, task.rack_id)
        return await _load(services, task_id, site_id)
    raise Conflict(f"task {task_id} kept changing while being cancelled; try again")


async def _cancel_workflow(services: Services, task: Task, status: TaskStatus, wait: float) -> None:
    client = services.temporal
    if client is None:
        raise ServiceUnavailable(
            "Temporal is not reachable from this process; the task cannot be cancelled now"
        )
    if await cancel_task_workflow(client, str(task.id)):
        current = await _wait_finished(services, task, wait)
        if TaskStatus(current.status).finished:
            return
        log.warning("task %s did not stop within %.1fs; terminating its workflow", task.id, wait)
        await terminate_task_workflow(client, str(task.id), CANCELLED)
        task, status = current, TaskStatus(current.status)
    # No workflow to ask (gone or closed) or it did not answer: finish the row here.
    for _ in range(5):
        if await _terminate_row(services, task, status):
            return
        task = await _load(services, task.id, task.site_id)
        status = TaskStatus(task.status)
        if status.finished:
            return
