"""The `run_step` activity against the real simulator (Temporal's activity test
environment): what it heartbeats, where a retried attempt resumes, and which cancels it
answers (the workflow's) and which it fails (a worker shutting down)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from temporalio.activity import ActivityCancellationDetails
from temporalio.testing import ActivityEnvironment

from nico.engine import ledger
from nico.engine import payloads as p
from nico.engine.activities import EngineActivities
from nico.engine.hardware_ops import HardwareOps
from nico.hardware.simulator import firmware_job_id
from nico.services import Services
from tests.engine.support import SimRack, act, make_rack, sim_state, step


def step_input(rack: SimRack, definition: dict[str, Any]) -> p.StepRunInput:
    trays = rack.of(definition["componentType"])
    return p.StepRunInput(
        step=p.StepInput(
            task_id="00000000-0000-0000-0000-000000000001",
            stage=1,
            position=0,
            step=definition,
            trays=trays,
            task_trays=rack.all,
            operation_type="PowerControl",
            operation_code="power_on",
            info={},
        ),
        limit=600.0,
        budget=600.0,
    )


async def test_progress_is_heartbeated_and_a_retried_attempt_skips_finished_trays(
    services: Services,
) -> None:
    rack = await make_rack(services, compute=0, switches=0, shelves=3)
    data = step_input(rack, step("PowerShelf", 1, act("PowerControl")))
    activities = EngineActivities(services, None)
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    first, *rest = rack.of("PowerShelf")
    # What an earlier attempt heartbeated before its worker died: the first shelf done.
    env.info = dataclasses.replace(
        env.info,
        attempt=2,
        heartbeat_details=[{"peak": 1, "trays": {first.id: [1, "completed", ""]}}],
    )
    result = await env.run(activities.run_step, data)
    assert (result.status, result.completed, result.failed) == ("completed", 3, 0)
    assert await sim_state(services, first.id) is None  # not sent again
    for shelf in rest:
        state = await sim_state(services, shelf.id)
        assert state is not None and state.power_ops == 1
    assert beats and beats[-1]["trays"][first.id][1] == "completed"


async def run_and_cancel(
    services: Services, details: ActivityCancellationDetails
) -> tuple[asyncio.Task[p.StepResult], SimRack]:
    rack = await make_rack(services, compute=2, switches=0, shelves=0)
    data = step_input(rack, step("Compute", 1, act("Sleep", duration="1h")))
    env = ActivityEnvironment()
    started = asyncio.Event()
    env.on_heartbeat = lambda *details: started.set()
    running = asyncio.create_task(env.run(EngineActivities(services, None).run_step, data))
    await asyncio.wait_for(started.wait(), 30)
    env.cancel(details)
    return running, rack


async def test_the_workflows_cancel_is_answered_with_the_counts(
    services: Services, real_engine_waits: None
) -> None:
    running, _ = await run_and_cancel(services, ActivityCancellationDetails(cancel_requested=True))
    result = await running
    assert (result.status, result.total, result.completed) == ("cancelled", 2, 0)


async def test_a_worker_shutdown_fails_the_attempt_so_the_step_runs_elsewhere(
    services: Services, real_engine_waits: None
) -> None:
    running, _ = await run_and_cancel(services, ActivityCancellationDetails(worker_shutdown=True))
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_step_the_engine_cannot_read_fails_instead_of_being_retried(
    services: Services,
) -> None:
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    data = step_input(rack, {"componentType": "Compute", "stage": 1})  # no mainOperation
    result = await ActivityEnvironment().run(EngineActivities(services, None).run_step, data)
    assert (result.status, result.total) == ("failed", 1)
    assert result.error == "internal error: KeyError: 'mainOperation'"


def firmware_input(rack: SimRack, version: str, **info: Any) -> p.StepRunInput:
    data = step_input(rack, step("Compute", 1, act("FirmwareControl", poll_interval="1s")))
    data.step.operation_type, data.step.operation_code = "FirmwareControl", "upgrade"
    data.step.info = {"version": version, **info}
    return data


async def test_a_firmware_step_skips_trays_whose_bmc_reports_the_version(
    services: Services,
) -> None:
    rack = await make_rack(services, compute=2, switches=0, shelves=0)
    at_target, behind = rack.of("Compute")
    # The first tray's BMC already runs 2.0.0 (an earlier task put it there).
    ops = HardwareOps(services)
    key = f"earlier/{at_target.id}/main"
    await ops.firmware_start(p.FirmwareCommand(key, at_target.id, "upgrade", "2.0.0"))
    assert await ops.firmware_versions([at_target.id]) == ["2.0.0"]

    env = ActivityEnvironment()
    result = await env.run(EngineActivities(services, None).run_step, firmware_input(rack, "2.0.0"))
    assert (result.status, result.completed, result.failed, result.skipped) == (
        "completed",
        1,
        0,
        1,
    )
    assert result.components == [
        {
            "trayId": at_target.id,
            "name": at_target.name,
            "outcome": "skipped",
            "fromVersion": "2.0.0",
            "toVersion": "2.0.0",
        },
        {
            "trayId": behind.id,
            "name": behind.name,
            "outcome": "completed",
            "fromVersion": "1.0.0",
            "toVersion": "2.0.0",
        },
    ]
    state = await sim_state(services, at_target.id)
    assert state is not None
    assert state.firmware_job_id == firmware_job_id(key)  # no second update was sent


async def test_a_resumed_firmware_step_does_not_skip_a_tray_its_update_already_reached(
    services: Services,
) -> None:
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    [tray] = rack.of("Compute")
    data = firmware_input(rack, "2.0.0")
    # The earlier attempt started this step's update, then its worker died before the
    # tray's progress moved on; the update has finished meanwhile.
    key = f"{data.step.task_id}/stage-1/step-0/{tray.id}/main"
    await HardwareOps(services).firmware_start(p.FirmwareCommand(key, tray.id, "upgrade", "2.0.0"))
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        attempt=2,
        heartbeat_details=[{"peak": 1, "trays": {tray.id: [0, "running", "", "1.0.0", None]}}],
    )
    result = await env.run(EngineActivities(services, None).run_step, data)
    assert (result.status, result.completed, result.skipped) == ("completed", 1, 0)
    assert result.components is not None
    assert result.components[0]["outcome"] == "completed"
    # From what the first attempt read, not what its update left for this one to read.
    assert (result.components[0]["fromVersion"], result.components[0]["toVersion"]) == (
        "1.0.0",
        "2.0.0",
    )


async def test_an_acceptance_is_recorded_even_when_its_attempt_is_cancelled(
    services: Services,
) -> None:
    """The BMC took the update, then the attempt's deadline fired while its acceptance
    waited for a ledger batch: the record still lands, so the retry sends no second update."""
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    [tray] = rack.of("Compute")
    ops = HardwareOps(services)
    task = "00000000-0000-0000-0000-000000000001"
    # Another tray's acceptance is being written: this one waits for the next batch.
    other = asyncio.create_task(ops._accepted(f"{task}/other", tray.id, "power", {}))
    for _ in range(3):
        await asyncio.sleep(0)
    key = f"{task}/stage-1/step-0/main"
    recording = asyncio.create_task(ops._accepted(key, tray.id, "firmware", {"jobId": "job-1"}))
    await asyncio.sleep(0)
    assert not other.done()  # still writing: this acceptance has not started
    recording.cancel()
    with pytest.raises(asyncio.CancelledError):
        await recording
    await other
    entry = await ops._lookup(key)
    assert entry is not None and entry.accepted and entry.result == {"jobId": "job-1"}


async def test_a_cancel_goes_on_when_the_acceptance_it_waited_for_fails(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task cancel reaches the attempt while the BMC's acceptance is being written, and
    the write then fails with an error that is not an outage. The call still ends
    cancelled. Before, the write's error replaced the cancel: the tray's attempt loop took
    it for a failed attempt and went on sending the command after the cancel."""
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    [tray] = rack.of("Compute")
    ops = HardwareOps(services)

    async def record_many(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.2)
        raise IntegrityError("INSERT INTO operation_ledger", {}, Exception("row refused"))

    monkeypatch.setattr(ledger, "record_many", record_many)
    key = "00000000-0000-0000-0000-000000000001/stage-1/step-0/main"
    recording = asyncio.create_task(ops._accepted(key, tray.id, "power", {}))
    await asyncio.sleep(0.05)  # the write is in progress
    recording.cancel()
    with pytest.raises(asyncio.CancelledError):
        await recording
