"""The Temporal worker: task and step workflows plus the engine's activities."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from nico.engine.activities import EngineActivities
from nico.engine.workflows import StepWorkflow, TaskWorkflow
from nico.services import Services

# Enough for a full rack's trays in flight per step, several tasks at once.
MAX_CONCURRENT_ACTIVITIES = 200


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
        workflows=[TaskWorkflow, StepWorkflow],
        activities=activities.all(),
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        # Our workflow-side modules are pure; passing them through skips re-importing them
        # into every workflow run's sandbox.
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("nico")
        ),
    )
