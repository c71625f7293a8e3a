"""Start a Pending task's workflow (after the creating transaction has committed).

Dispatch is safe to repeat: the workflow id is the task id and starting it is idempotent,
so the reconciler may re-dispatch a task whose API process died before starting it, or
that found Temporal unreachable: an outage leaves tasks Pending, it never fails them.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError, RPCStatusCode

from nico.domain import TaskStatus
from nico.engine.client import cancel_task_workflow, start_task_workflow
from nico.engine.contracts import TaskWorkflowInput, TrayTarget
from nico.rules.resolution import resolve_rule
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.models import Task, Tray

log = logging.getLogger("nico.tasks")

NO_TRAYS_LEFT = "None of the targeted trays exist any more; nothing to run"

_UNREACHABLE_STATUSES = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})


class Dispatch(Enum):
    """What `dispatch_task` did with a task."""

    STARTED = "started"  # workflow started, or the task no longer needed one
    DEFERRED = "deferred"  # left Pending (no Temporal, or unreachable): the reconciler retries
    FAILED = "failed"  # the task failed instead: its rack is free for the queue


def temporal_unreachable(exc: BaseException) -> bool:
    """Whether a Temporal call failed because the server is down, restarting or too slow
    (the same call may succeed later) rather than because it refused this request."""
    if isinstance(exc, RPCError):
        return exc.status in _UNREACHABLE_STATUSES
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    # A client connected lazily raises this when the server does not answer.
    return isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect")


@dataclass(frozen=True)
class RuleChoice:
    """The rule a task runs: wire definition snapshot, stored id (None = built-in), source."""

    definition: dict[str, Any]
    rule_id: uuid.UUID | None
    source: str

    def columns(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "rule_source": self.source,
            "rule_definition": self.definition,
        }


async def choose_rule(
    session: AsyncSession,
    *,
    site_id: uuid.UUID,
    rack_id: uuid.UUID,
    operation_type: str,
    operation_code: str,
    pinned_rule_id: uuid.UUID | None,
) -> RuleChoice:
    """Resolve the rule (pinned -> rack -> site default -> built-in); 400 for a bad pin."""
    resolved = await resolve_rule(
        session,
        site_id=site_id,
        rack_id=rack_id,
        operation_type=operation_type,
        operation_code=operation_code,
        pinned_rule_id=pinned_rule_id,
    )
    return RuleChoice(resolved.definition.to_wire(), resolved.rule_id, resolved.source)


async def workflow_input(session: AsyncSession, task: Task) -> TaskWorkflowInput | None:
    """The workflow payload of a task; None when none of its trays exist any more."""
    ids = [uuid.UUID(str(i)) for ids in task.targets.values() for i in ids]
    result = await session.execute(select(Tray).where(Tray.id.in_(ids)))
    found = {t.id: t for t in result.scalars()}
    trays: list[TrayTarget] = []
    for kind in task.targets:
        for raw in task.targets[kind]:
            tray = found.get(uuid.UUID(str(raw)))
            if tray is not None:
                trays.append(TrayTarget(id=str(tray.id), name=tray.name or str(tray.id), type=kind))
    if not trays:
        return None
    return TaskWorkflowInput(
        task_id=str(task.id),
        site_id=str(task.site_id),
        rack_id=str(task.rack_id),
        operation_type=task.operation_type,
        operation_code=task.operation_code,
        rule_definition=dict(task.rule_definition or {}),
        trays=trays,
        info=dict(task.information or {}),
    )


async def fail_pending(services: Services, task_id: uuid.UUID, reason: str) -> bool:
    """Pending -> Failed with `reason`; False if the task had already moved on."""
    async with services.db.session() as session:
        return await task_store.transition_task(
            session, task_id, TaskStatus.FAILED, message=reason, expected=TaskStatus.PENDING
        )


async def dispatch_task(services: Services, task_id: uuid.UUID) -> Dispatch:
    """Start the workflow of a Pending task.

    FAILED when the task failed instead (no trays left, Temporal refused the workflow), so
    the caller promotes the rack's queue. DEFERRED when there is no Temporal client (an
    API-only process) or Temporal is unreachable: the task stays Pending and the worker's
    reconciler dispatches it after NICO_RECONCILE_GRACE; callers stop dispatching more in
    that pass, since the next start would meet the same outage.
    """
    client = services.temporal
    if client is None:
        log.info("task %s left Pending: no Temporal client in this process", task_id)
        return Dispatch.DEFERRED
    async with services.db.session() as session:
        task = await task_store.get_task(session, task_id)
        if task is None or task.status != TaskStatus.PENDING.value:
            return Dispatch.STARTED
        payload = await workflow_input(session, task)
    if payload is None:
        await fail_pending(services, task_id, NO_TRAYS_LEFT)
        return Dispatch.FAILED
    try:
        await start_task_workflow(client, services.settings, payload)
    except Exception as exc:
        if temporal_unreachable(exc):
            log.warning("task %s left Pending: Temporal unreachable (%s)", task_id, exc)
            return Dispatch.DEFERRED
        log.warning("starting the workflow of task %s failed: %s", task_id, exc)
        await fail_pending(services, task_id, f"Failed to start the task workflow: {exc}")
        return Dispatch.FAILED
    async with services.db.session() as session:
        await task_store.mark_dispatched(session, task_id)
        task = await task_store.get_task(session, task_id)
        cancelled = task is not None and task.status == TaskStatus.TERMINATED.value
    if cancelled:
        # Cancelled between commit and start: the workflow must not run. If Temporal is
        # unreachable now, its begin step refuses the Terminated task anyway.
        try:
            await cancel_task_workflow(client, str(task_id))
        except Exception as exc:
            if not temporal_unreachable(exc):
                raise
            log.warning("task %s: could not cancel its new workflow (%s)", task_id, exc)
    return Dispatch.STARTED
