"""What the task manager (and the CLI) use to drive task workflows on Temporal.

Workflow id = task id, so every call here is addressed by task id. A task's workflow runs
at most once: starting an id that already ran (or runs) is a no-op, never a second run.
"""

from __future__ import annotations

import uuid
from collections import Counter
from enum import StrEnum

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from nico.config import Settings
from nico.engine.contracts import TASK_WORKFLOW, TaskWorkflowInput
from nico.engine.policy import execution_timeout, outage_allowance, task_budget
from nico.rules.model import RuleDefinition


class WorkflowState(StrEnum):
    """Where a task's workflow is, as the reconciler needs to know it."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"
    CONTINUED_AS_NEW = "CONTINUED_AS_NEW"
    MISSING = "MISSING"


_STATUS_TO_STATE: dict[WorkflowExecutionStatus, WorkflowState] = {
    WorkflowExecutionStatus.RUNNING: WorkflowState.RUNNING,
    WorkflowExecutionStatus.COMPLETED: WorkflowState.COMPLETED,
    WorkflowExecutionStatus.FAILED: WorkflowState.FAILED,
    WorkflowExecutionStatus.CANCELED: WorkflowState.CANCELED,
    WorkflowExecutionStatus.TERMINATED: WorkflowState.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: WorkflowState.TIMED_OUT,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: WorkflowState.CONTINUED_AS_NEW,
}


def temporal_target(settings: Settings) -> str:
    """NICO_TEMPORAL_ADDRESS, else the embedded dev server `nico serve` starts."""
    return settings.temporal_address or f"127.0.0.1:{settings.temporal_dev_port}"


async def connect(settings: Settings) -> Client:
    return await Client.connect(temporal_target(settings), namespace=settings.temporal_namespace)


def _workflow_id(task_id: uuid.UUID | str) -> str:
    return str(task_id)


def _is_not_found(exc: RPCError) -> bool:
    return exc.status == RPCStatusCode.NOT_FOUND


async def start_task_workflow(
    client: Client, settings: Settings, payload: TaskWorkflowInput
) -> None:
    """Start the task's workflow; an id that already started (or finished) is left alone."""
    rule = RuleDefinition.from_wire(payload.rule_definition)
    budget = task_budget(rule, Counter(t.type for t in payload.trays))
    try:
        await client.start_workflow(
            TASK_WORKFLOW,
            payload,
            id=_workflow_id(payload.task_id),
            task_queue=settings.temporal_task_queue,
            execution_timeout=execution_timeout(budget + outage_allowance(rule)),
            # A task runs once: never start a second run under the same id.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowAlreadyStartedError:
        return


async def task_workflow_state(client: Client, task_id: uuid.UUID | str) -> WorkflowState:
    try:
        description = await client.get_workflow_handle(_workflow_id(task_id)).describe()
    except RPCError as exc:
        if _is_not_found(exc):
            return WorkflowState.MISSING
        raise
    if description.status is None:
        return WorkflowState.MISSING
    return _STATUS_TO_STATE.get(description.status, WorkflowState.MISSING)


async def cancel_task_workflow(client: Client, task_id: uuid.UUID | str) -> bool:
    """Ask the running workflow to cancel gracefully (it finalizes the report and writes
    Terminated). False when there is no running workflow to ask."""
    if await task_workflow_state(client, task_id) is not WorkflowState.RUNNING:
        return False
    try:
        await client.get_workflow_handle(_workflow_id(task_id)).cancel()
    except RPCError as exc:
        if _is_not_found(exc):
            return False
        raise
    return True


async def terminate_task_workflow(client: Client, task_id: uuid.UUID | str, reason: str) -> None:
    """Hard-stop the workflow (no workflow code runs); a closed or missing one is fine."""
    try:
        await client.get_workflow_handle(_workflow_id(task_id)).terminate(reason=reason)
    except RPCError as exc:
        if _is_not_found(exc):
            return
        raise
