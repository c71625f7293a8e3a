"""Kill -9 a real worker process mid-task, start another: the task still succeeds and no
tray was sent its power command twice (dev server, real time)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from nico.domain import TaskStatus
from nico.engine.client import start_task_workflow
from nico.services import Services
from tests.engine.support import (
    SimRack,
    act,
    make_rack,
    make_task,
    rule,
    sim_state,
    step,
)
from tests.support.tasks import load_task
from tests.support.temporal import dev_server_address
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.temporal]


@pytest.fixture
def workers(
    services: Services, temporal_dev_env: WorkflowEnvironment
) -> Iterator[list[WorkerProcess]]:
    services.settings.temporal_task_queue = f"durability-{uuid.uuid4().hex}"
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


async def power_ops(services: Services, rack: SimRack, kind: str) -> list[int]:
    counts = []
    for tray in rack.of(kind):
        state = await sim_state(services, tray.id)
        counts.append(state.power_ops if state else 0)
    return counts


async def test_a_killed_worker_loses_nothing_and_repeats_no_power_command(
    services: Services,
    temporal_dev_env: WorkflowEnvironment,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    rack = await make_rack(services, compute=6, switches=2, shelves=2)
    verify = [act("VerifyPowerStatus", "2m", "1s", expected_status="on")]
    payload = await make_task(
        services,
        rack,
        rule(
            step("PowerShelf", 1, act("PowerControl"), post=verify),
            step("NVLSwitch", 2, act("PowerControl"), post=verify),
            step("Compute", 3, act("PowerControl"), post=verify, max_parallel=2),
        ),
    )
    address = dev_server_address(temporal_dev_env)
    first = WorkerProcess(services, address, tmp_path / "worker-1.log")
    workers.append(first)
    first.start()
    await start_task_workflow(temporal_dev_env.client, services.settings, payload)

    # Kill the worker while compute trays are being powered on.
    for _ in range(600):
        if sum(await power_ops(services, rack, "Compute")) >= 1:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("compute trays never got a power command: " + first.log.read_text()[-2000:])
    first.kill()
    mid = await load_task(services, payload.task_id)
    assert mid.status == TaskStatus.RUNNING.value
    assert sum(await power_ops(services, rack, "Compute")) < 6  # really mid-task

    second = WorkerProcess(services, address, tmp_path / "worker-2.log")
    workers.append(second)
    second.start()
    for _ in range(900):
        task = await load_task(services, payload.task_id)
        if task.status != TaskStatus.RUNNING.value:
            break
        await asyncio.sleep(0.1)
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    for kind in ("PowerShelf", "NVLSwitch", "Compute"):
        assert await power_ops(services, rack, kind) == [1] * len(rack.of(kind)), kind
    assert task.report is not None
    compute = task.report["stages"][2]["steps"][0]
    assert (compute["completedComponents"], compute["failedComponents"]) == (6, 0)
