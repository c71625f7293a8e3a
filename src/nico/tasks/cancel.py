"""Cancel a task: graceful where a workflow runs, direct where none does.

- Terminated: nothing to do (idempotent).
- Succeeded / Failed: 409, a finished task cannot be cancelled.
- Waiting, or Pending before its workflow was started: Terminated at once.
- Pending / Running with a workflow: ask the workflow to cancel; it finalizes the report
  and writes Terminated itself. If it has not done so within NICO_CANCEL_WAIT seconds
  (worker down or overloaded, workflow stuck), the workflow is terminated and the
  freshest report there is gets finalized here: the workflow's live report if its worker
  still answers a query, else the last one it saved (live counts since then are lost,
  which is why the default wait is generous).

Either way the rack's queue is then promoted. Hardware commands already sent to a BMC
are not recalled; cancel stops everything that was not yet sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import Client

from nico.domain import TaskStatus
from nico.engine.client import cancel_task_workflow, terminate_task_workflow
from nico.engine.report import finalize_cancelled
from nico.engine.workflows import TaskWorkflow
from nico.errors import Conflict, NotFound, ServiceUnavailable
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.models import Task
from nico.tasks.dispatch import temporal_unreachable
from nico.tasks.queue import promote_rack

log = logging.getLogger("nico.tasks")
T = TypeVar("T")

CANCELLED = "Cancelled by user"
TASK_NOT_FOUND = "Task not found"
TEMPORAL_DOWN = "Temporal is not reachable; the task cannot be cancelled now, try again"
# How long a hard cancel asks the workflow for its live report before using the saved one.
LIVE_REPORT_TIMEOUT = timedelta(seconds=2)


async def _load(services: Services, task_id: uuid.UUID, site_id: uuid.UUID) -> Task:
    async with services.db.session() as session:
        task = await task_store.get_task(session, task_id, site_id)
    if task is None:
        raise NotFound(TASK_NOT_FOUND)
    return task


async def _terminate_row(
    services: Services,
    task: Task,
    status: TaskStatus,
    report: dict[str, Any] | None = None,
) -> bool:
    """CAS `status` -> Terminated with `report` (default: the stored one) finalized."""
    async with services.db.session() as session:
        return await task_store.transition_task(
            session,
            task.id,
            TaskStatus.TERMINATED,
            message=CANCELLED,
            expected=status,
            report=finalize_cancelled(task.report if report is None else report),
        )


async def _live_report(client: Client, task_id: uuid.UUID) -> dict[str, Any] | None:
    """The workflow's in-memory report, live counts included, if its worker answers in
    time; None when it does not (worker down) or the workflow has no report yet."""
    handle = client.get_workflow_handle(str(task_id))
    try:
        return await handle.query(TaskWorkflow.report, rpc_timeout=LIVE_REPORT_TIMEOUT)
    except Exception as exc:
        log.info("task %s: no live report from its workflow (%s)", task_id, exc)
        return None


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


async def _reach_temporal(task: Task, call: Awaitable[T]) -> T:
    """`call` to Temporal; 503 when Temporal cannot be reached (only its own failures:
    a database outage stays what it is)."""
    try:
        return await call
    except Exception as exc:
        if not temporal_unreachable(exc):
            raise
        log.warning("task %s: Temporal unreachable while cancelling (%s)", task.id, exc)
        raise ServiceUnavailable(TEMPORAL_DOWN) from exc


async def _cancel_workflow(services: Services, task: Task, status: TaskStatus, wait: float) -> None:
    client = services.temporal
    if client is None:
        raise ServiceUnavailable(TEMPORAL_DOWN)
    live: dict[str, Any] | None = None
    if await _reach_temporal(task, cancel_task_workflow(client, str(task.id))):
        current = await _wait_finished(services, task, wait)
        if TaskStatus(current.status).finished:
            return
        log.warning("task %s did not stop within %.1fs; terminating its workflow", task.id, wait)
        live = await _live_report(client, task.id)
        await _reach_temporal(task, terminate_task_workflow(client, str(task.id), CANCELLED))
        # Re-read after the terminate: a save that landed meanwhile is the freshest one.
        task = await _load(services, task.id, task.site_id)
        status = TaskStatus(task.status)
        if status.finished:
            return
    # No workflow to ask (gone or closed) or it did not answer: finish the row here.
    for _ in range(5):
        if await _terminate_row(services, task, status, live):
            return
        task = await _load(services, task.id, task.site_id)
        status = TaskStatus(task.status)
        if status.finished:
            return
    raise Conflict(f"task {task.id} kept changing while being cancelled; try again")
