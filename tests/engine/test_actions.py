"""Each of the 11 rule actions against the simulator: what success observes, and what an
operator reads when it fails (time-skipping Temporal server)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from nico.domain import TaskStatus
from nico.store.models import Task, Tray
from nico.store.simulator import FaultKind
from tests.engine.conftest import Engine
from tests.engine.support import (
    SimRack,
    act,
    add_fault,
    load_tray,
    make_rack,
    make_task,
    retry,
    rule,
    sim_state,
    step,
)


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


SHELVES_ON = step("PowerShelf", 1, act("PowerControl", operation="on"))


def step_error(task: Task, stage_number: int = 1) -> str:
    assert task.report is not None
    stage: dict[str, Any] = next(s for s in task.report["stages"] if s["number"] == stage_number)
    error: str = stage["steps"][0]["error"]
    return error


async def run(
    engine: Engine,
    rack: SimRack,
    *steps: dict[str, Any],
    operation_type: str = "PowerControl",
    operation_code: str = "power_on",
    info: dict[str, Any] | None = None,
) -> Task:
    payload = await make_task(
        engine.services,
        rack,
        rule(*steps),
        operation_type=operation_type,
        operation_code=operation_code,
        info=info,
    )
    task, _ = await engine.run(payload)
    return task


# --- Sleep ------------------------------------------------------------------------------


async def test_sleep_waits_its_duration(engine: Engine, real_engine_waits: None) -> None:
    rack = await make_rack(engine.services, compute=1, switches=0, shelves=0)
    task = await run(engine, rack, step("Compute", 1, act("Sleep", duration="2s")))
    assert task.status == TaskStatus.SUCCEEDED.value
    assert task.report is not None
    only = task.report["stages"][0]
    assert seconds_between(only["startedAt"], only["finishedAt"]) >= 2


# --- PowerControl -----------------------------------------------------------------------


async def test_power_control_uses_its_operation_parameter_over_the_task_code(
    engine: Engine,
) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=2)
    task = await run(
        engine,
        rack,
        SHELVES_ON,
        step("PowerShelf", 2, act("PowerControl", operation="forceoff")),
        operation_code="power_on",
    )
    assert task.status == TaskStatus.SUCCEEDED.value
    for shelf in rack.of("PowerShelf"):
        state = await sim_state(engine.services, shelf.id)
        assert state is not None and (state.power_on, state.power_ops) == (False, 2)


async def test_power_control_fails_on_an_unreachable_bmc(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=1, switches=0, shelves=1)
    task = await run(engine, rack, step("Compute", 1, act("PowerControl"), retry=retry(3, "1s")))
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task) == (
        "1 of 1 Compute failed: compute-01: BMC unreachable: no PowerShelf of the rack is on "
        "(PowerControl, 3 attempts)"
    )


# --- VerifyPowerStatus ------------------------------------------------------------------


async def test_verify_power_status_waits_for_the_state(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    verify = act("VerifyPowerStatus", "3m", "10s", expected_status="on")
    task = await run(engine, rack, step("PowerShelf", 1, act("PowerControl"), post=[verify]))
    assert task.status == TaskStatus.SUCCEEDED.value


async def test_verify_power_status_reports_the_state_it_stayed_in(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=2)
    await add_fault(
        engine.services, rack, FaultKind.POWER_STUCK.value, tray=rack.of("PowerShelf")[1]
    )
    verify = act("VerifyPowerStatus", "3m", "10s", expected_status="on")
    task = await run(engine, rack, step("PowerShelf", 1, act("PowerControl"), post=[verify]))
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task) == (
        "1 of 2 PowerShelf failed: shelf-02: power state stayed Off after 3m (expected On)"
    )
    assert task.report is not None
    shelves = task.report["stages"][0]["steps"][0]
    assert (shelves["completedComponents"], shelves["failedComponents"]) == (1, 1)


async def test_polls_stop_at_once_when_waiting_cannot_help(engine: Engine) -> None:
    # Redfish trays with no BMC address: every read is refused for good, not "not yet".
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1, backend="redfish")
    verify = act("VerifyPowerStatus", "30m", "10s", expected_status="on")
    reach = act("VerifyReachability", "30m", "10s", component_types=["PowerShelf"])
    expected = {
        verify["name"]: "power status not readable: tray shelf-01 has no BMC address in inventory",
        reach["name"]: "not reachable: shelf-01: tray shelf-01 has no BMC address in inventory",
    }
    for poll in (verify, reach):
        task = await run(engine, rack, step("PowerShelf", 1, poll))
        assert task.status == TaskStatus.FAILED.value
        assert step_error(task) == f"1 of 1 PowerShelf failed: shelf-01: {expected[poll['name']]}"
        assert task.report is not None
        only = task.report["stages"][0]["steps"][0]
        assert seconds_between(only["startedAt"], only["finishedAt"]) < 60  # not 30m


# --- VerifyReachability -----------------------------------------------------------------


async def test_verify_reachability_checks_this_tray_and_the_listed_types(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=1, shelves=1)
    reach = act(
        "VerifyReachability", "1m", "5s", component_types=["compute", "NVSwitch"], require_all=True
    )
    task = await run(engine, rack, SHELVES_ON, step("Compute", 2, act("PowerControl"), pre=[reach]))
    assert task.status == TaskStatus.SUCCEEDED.value


async def test_verify_reachability_names_the_unreachable_trays(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=1, switches=1, shelves=1)
    reach = act("VerifyReachability", "30s", "5s", component_types=["Compute"])
    task = await run(engine, rack, step("Compute", 1, act("GetPowerStatus"), pre=[reach]))
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task) == (
        "1 of 1 Compute failed: compute-01: not reachable after 30s: compute-01: BMC unreachable"
    )


# --- GetPowerStatus ---------------------------------------------------------------------


async def test_get_power_status_records_the_observed_state(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    assert (await load_tray(engine.services, shelf.id)).power_state == "Unknown"
    task = await run(engine, rack, step("PowerShelf", 1, act("GetPowerStatus")))
    assert task.status == TaskStatus.SUCCEEDED.value
    assert (await load_tray(engine.services, shelf.id)).power_state == "Off"


async def test_get_power_status_fails_when_the_bmc_does_not_answer(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    await add_fault(engine.services, rack, FaultKind.UNREACHABLE.value)
    task = await run(engine, rack, step("PowerShelf", 1, act("GetPowerStatus"), retry=retry(2)))
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task).endswith(
        "shelf-01: BMC unreachable (injected fault) (GetPowerStatus, 2 attempts)"
    )


# --- FirmwareControl / VerifyFirmwareVersion / VerifyFirmwareConsistency ----------------

FIRMWARE_INFO = {"version": "2.0.0", "targets": ["bmc"]}


def firmware_step(**extra: Any) -> dict[str, Any]:
    return step(
        "PowerShelf",
        1,
        act("FirmwareControl", poll_interval="10s", poll_timeout="5m"),
        post=[act("VerifyFirmwareVersion")],
        **extra,
    )


async def test_firmware_update_installs_and_verifies_the_requested_version(
    engine: Engine,
) -> None:
    engine.services.settings.sim_firmware_duration = 0.5  # a few real polls
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=2)
    task = await run(
        engine,
        rack,
        firmware_step(),
        step("PowerShelf", 2, act("VerifyFirmwareConsistency")),
        operation_type="FirmwareControl",
        operation_code="upgrade",
        info=FIRMWARE_INFO,
    )
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    for shelf in rack.of("PowerShelf"):
        assert (await load_tray(engine.services, shelf.id)).firmware_version == "2.0.0"


async def test_firmware_version_per_component_type(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    task = await run(
        engine,
        rack,
        firmware_step(),
        operation_type="FirmwareControl",
        operation_code="upgrade",
        info={"version": {"compute": "9.9", "powershelf": "3.1.4"}},
    )
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    shelf = rack.of("PowerShelf")[0]
    assert (await load_tray(engine.services, shelf.id)).firmware_version == "3.1.4"


async def test_a_failed_firmware_update_says_why(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    await add_fault(engine.services, rack, FaultKind.FIRMWARE_FAIL.value)
    task = await run(
        engine,
        rack,
        firmware_step(),
        operation_type="FirmwareControl",
        operation_code="upgrade",
        info=FIRMWARE_INFO,
    )
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task) == (
        "1 of 1 PowerShelf failed: shelf-01: firmware update failed: "
        "image rejected (injected fault)"
    )


async def test_a_hung_firmware_update_times_out_with_its_progress(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    await add_fault(engine.services, rack, FaultKind.FIRMWARE_HANG.value)
    task = await run(
        engine,
        rack,
        firmware_step(),
        operation_type="FirmwareControl",
        operation_code="upgrade",
        info=FIRMWARE_INFO,
    )
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task) == (
        "1 of 1 PowerShelf failed: shelf-01: firmware update not finished after 5m: "
        "firmware update Running at 50%"
    )


async def test_verify_firmware_version_reports_a_mismatch(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1, firmware="1.0.0")
    task = await run(
        engine,
        rack,
        step("PowerShelf", 1, act("VerifyFirmwareVersion", expected_version="2.0.0")),
    )
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task).endswith("shelf-01: firmware version is 1.0.0, expected 2.0.0")


async def test_verify_firmware_consistency_lists_the_versions_found(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=3, firmware="1.0.0")
    odd = rack.of("PowerShelf")[2]
    async with engine.services.db.session() as session:
        tray = await session.get(Tray, uuid.UUID(odd.id))
        assert tray is not None
        tray.firmware_version = "0.9.0"
    task = await run(engine, rack, step("PowerShelf", 1, act("VerifyFirmwareConsistency")))
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task) == (
        "PowerShelf check failed: firmware versions differ: "
        "1.0.0 on shelf-01, shelf-02; 0.9.0 on shelf-03"
    )


# --- BringUpControl / WaitBringUp / InjectExpectation -----------------------------------


async def test_bring_up_opens_the_gate_and_waits_for_ingestion(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=0, shelves=1)
    task = await run(
        engine,
        rack,
        SHELVES_ON,
        step(
            "Compute",
            2,
            act("PowerControl", operation="on"),
            pre=[act("InjectExpectation"), act("BringUpControl")],
            post=[act("WaitBringUp", "15m", "30s")],
        ),
        operation_type="BringUp",
        operation_code="bring_up",
    )
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    for compute in rack.of("Compute"):
        state = await sim_state(engine.services, compute.id)
        assert state is not None
        assert (state.bring_up_open, state.expectation_injected, state.power_on) == (
            True,
            True,
            True,
        )


async def test_wait_bring_up_fails_when_the_gate_never_opens(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=1, switches=0, shelves=1)
    task = await run(
        engine,
        rack,
        SHELVES_ON,
        step(
            "Compute",
            2,
            act("PowerControl", operation="on"),
            post=[act("WaitBringUp", "10m", "1m")],
        ),
        operation_type="BringUp",
        operation_code="bring_up",
    )
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task, 2) == (
        "1 of 1 Compute failed: compute-01: not ingested after 10m: bring-up WaitingForIngestion"
    )


async def test_power_control_without_operation_fails_outside_power_tasks(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    task = await run(
        engine,
        rack,
        step("PowerShelf", 1, act("PowerControl")),
        operation_type="BringUp",
        operation_code="ingest",
    )
    assert task.status == TaskStatus.FAILED.value
    assert step_error(task).endswith(
        "shelf-01: PowerControl needs parameters.operation in a BringUp task"
    )
