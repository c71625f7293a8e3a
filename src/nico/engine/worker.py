"""The Temporal worker: task and step workflows plus the engine's activities."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from nico.engine.activities import EngineActivities
from nico.engine.step_workflow import StepWorkflow
from nico.engine.workflows import TaskWorkflow
from nico.services import Services

# Every workflow type a worker runs. Types are never removed while a task started with
# one may still be running (docs/engine.md, "Upgrading workers").
WORKFLOWS = (TaskWorkflow, StepWorkflow)

# Enough for a full rack's trays in flight per step, several tasks at once.
MAX_CONCURRENT_ACTIVITIES = 200

# Pure modules the workflows import: no I/O, no clock, no randomness, and nothing impure
# imported by them (tests/engine/test_sandbox.py checks). They are loaded once and shared
# with every workflow run instead of being re-imported into each run's sandbox. Workflow
# code itself (`nico.engine.workflows`, `nico.engine.step_workflow`, `nico.engine.actions`)
# is not on the list, so the sandbox keeps checking it.
PURE_WORKFLOW_MODULES: tuple[str, ...] = (
    "nico.domain",
    "nico.text",
    "nico.engine.contracts",
    "nico.engine.messages",
    "nico.engine.payloads",
    "nico.engine.policy",
    "nico.engine.retries",
    "nico.hardware.interface",
    "nico.rules.durations",
    "nico.rules.model",
    "nico.engine.report",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox the worker runs workflows in (replay tests use the same one)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PURE_WORKFLOW_MODULES)
    )


def build_worker(
    client: Client,
    services: Services,
    *,
    on_task_finished: Callable[[uuid.UUID], Awaitable[None]] | None = None,
) -> Worker:
    """A worker on `NICO_TEMPORAL_TASK_QUEUE`. `on_task_finished(rack_id)` runs after a
    task's final status is written, so queued tasks of that rack can be promoted."""
    activities = EngineActivities(services, on_task_finished)
    return Worker(
        client,
        task_queue=services.settings.temporal_task_queue,
        workflows=list(WORKFLOWS),
        activities=activities.all(),
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        workflow_runner=workflow_runner(),
    )
