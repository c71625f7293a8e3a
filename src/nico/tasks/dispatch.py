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
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from nico.domain import TaskStatus
from nico.engine.client import cancel_task_workflow, start_task_workflow
from nico.engine.contracts import TaskWorkflowInput, TrayTarget
from nico.rules.resolution import ResolvedRule, resolve_rule, resolve_rules
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
    return _choice(resolved)


def _choice(resolved: ResolvedRule) -> RuleChoice:
    return RuleChoice(resolved.definition.to_wire(), resolved.rule_id, resolved.source)


async def choose_rules(
    session: AsyncSession,
    *,
    site_id: uuid.UUID,
    rack_ids: list[uuid.UUID],
    operation_type: str,
    operation_code: str,
    pinned_rule_id: uuid.UUID | None,
) -> dict[uuid.UUID, RuleChoice]:
    """`choose_rule` for every rack of a bulk submission in a fixed number of queries;
    racks resolving to the same rule share one snapshot."""
    resolved = await resolve_rules(
        session,
        site_id=site_id,
        rack_ids=rack_ids,
        operation_type=operation_type,
        operation_code=operation_code,
        pinned_rule_id=pinned_rule_id,
    )
    shared: dict[int, RuleChoice] = {}
    out: dict[uuid.UUID, RuleChoice] = {}
    for rack_id, rule in resolved.items():
        if id(rule) not in shared:
            shared[id(rule)] = _choice(rule)
        out[rack_id] = shared[id(rule)]
    return out


def _tray_ids(task: Task) -> list[uuid.UUID]:
    return [uuid.UUID(str(i)) for ids in task.targets.values() for i in ids]


async def workflow_input(session: AsyncSession, task: Task) -> TaskWorkflowInput | None:
    """The workflow payload of a task; None when none of its trays exist any more."""
    result = await session.execute(select(Tray).where(Tray.id.in_(_tray_ids(task))))
    return build_input(task, {t.id: t for t in result.scalars()})


async def workflow_inputs(
    session: AsyncSession, task_ids: list[uuid.UUID]
) -> dict[uuid.UUID, TaskWorkflowInput | None]:
    """`workflow_input` of every task in `task_ids` that is still Pending, in two queries
    (tasks no longer Pending are left out: they need no workflow start)."""
    result = await session.execute(
        select(Task)
        .where(Task.id.in_(task_ids), Task.status == TaskStatus.PENDING.value)
        .execution_options(populate_existing=True)
    )
    tasks = list(result.scalars())
    ids = [tray_id for task in tasks for tray_id in _tray_ids(task)]
    found = {
        t.id: t for t in (await session.execute(select(Tray).where(Tray.id.in_(ids)))).scalars()
    }
    return {task.id: build_input(task, found) for task in tasks}


def build_input(task: Task, found: dict[uuid.UUID, Tray]) -> TaskWorkflowInput | None:
    """The payload from a task row and the trays that still exist (None if none does)."""
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
    outcome = await start_or_fail(services, task_id, payload)
    if outcome is not Dispatch.STARTED:
        return outcome
    async with services.db.session() as session:
        await task_store.mark_dispatched(session, task_id)
        task = await task_store.get_task(session, task_id)
        cancelled = task is not None and task.status == TaskStatus.TERMINATED.value
    if cancelled:
        await cancel_started(client, task_id)
    return Dispatch.STARTED


async def start_or_fail(
    services: Services, task_id: uuid.UUID, payload: TaskWorkflowInput | None
) -> Dispatch:
    """Start the workflow of a Pending task whose payload is built; a task with no trays
    left, or whose workflow Temporal refuses, fails instead (FAILED); an unreachable
    Temporal leaves it Pending (DEFERRED)."""
    client = services.temporal
    assert client is not None
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
    return Dispatch.STARTED


async def cancel_started(client: Client, task_id: uuid.UUID) -> None:
    """Cancelled between commit and start: the workflow must not run. If Temporal is
    unreachable now, its begin step refuses the Terminated task anyway."""
    try:
        await cancel_task_workflow(client, str(task_id))
    except Exception as exc:
        if not temporal_unreachable(exc):
            raise
        log.warning("task %s: could not cancel its new workflow (%s)", task_id, exc)
