"""Engine test rig: a worker on the time-skipping server for the test's services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from nico.engine.client import start_task_workflow
from nico.engine.contracts import TaskWorkflowInput
from nico.services import Services
from nico.store.models import Task
from tests.support.tasks import load_task
from tests.support.temporal import running_worker, wait_for_task_workflow


@dataclass
class Engine:
    """A running worker; `run(payload)` starts the task's workflow and waits for it."""

    env: WorkflowEnvironment
    services: Services
    finished_racks: list[uuid.UUID] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.env.client

    async def start(self, payload: TaskWorkflowInput) -> None:
        await start_task_workflow(self.client, self.services.settings, payload)

    async def run(self, payload: TaskWorkflowInput) -> tuple[Task, Any]:
        await self.start(payload)
        result = await wait_for_task_workflow(self.env, payload.task_id)
        return await load_task(self.services, payload.task_id), result


@pytest.fixture
async def engine(temporal_env: WorkflowEnvironment, services: Services) -> AsyncIterator[Engine]:
    rig = Engine(temporal_env, services)

    async def finished(rack_id: uuid.UUID) -> None:
        rig.finished_racks.append(rack_id)

    async with running_worker(temporal_env.client, services, on_task_finished=finished):
        yield rig


@pytest.fixture
async def dev_engine(
    temporal_dev_env: WorkflowEnvironment, services: Services
) -> AsyncIterator[Engine]:
    """A worker on the dev server (real time), for tests that would upset the
    time-skipping server: it stops skipping time for good after a child workflow start
    fails, which would hang every later test that waits on a timer."""
    rig = Engine(temporal_dev_env, services)

    async def finished(rack_id: uuid.UUID) -> None:
        rig.finished_racks.append(rack_id)

    async with running_worker(temporal_dev_env.client, services, on_task_finished=finished):
        yield rig
