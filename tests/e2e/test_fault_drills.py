"""Fault drills end to end: a fault injected through `POST /simulator/fault`, an operation
through the API, a real worker on the time-skipping server; the rule's retry, timeout or
verification turns the fault into the report an operator reads (which stage and step
failed, the error naming the trays, the counts, the task's status and message)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.live import BASE, Live

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

FAULTS = f"{BASE}/simulator/fault"


async def inject(live: Live, fault: str, *trays: str, **scope: Any) -> list[dict[str, Any]]:
    """Inject `fault` into the named trays (or the given scope) through the API."""
    body: dict[str, Any] = live.site | {"fault": fault} | scope
    if trays:
        body["trayIds"] = [live.tray_id(name) for name in trays]
    response = await live.http.post(FAULTS, json=body)
    assert response.status_code == 201, response.text
    faults: list[dict[str, Any]] = response.json()
    return faults


async def live_faults(live: Live) -> list[dict[str, Any]]:
    response = await live.http.get(FAULTS, params=live.site)
    assert response.status_code == 200, response.text
    faults: list[dict[str, Any]] = response.json()
    return faults


async def run(live: Live, state: str = "on", **body: Any) -> dict[str, Any]:
    """Power the rack through the API and read the finished task."""
    path = f"/rack/{live.rack.rack_id}/power"
    [task_id] = await live.operate("PATCH", path, {"state": state} | body)
    return await live.finished(task_id)


async def firmware(live: Live, version: str = "2.0.0") -> dict[str, Any]:
    path = f"/rack/{live.rack.rack_id}/firmware"
    [task_id] = await live.operate("PATCH", path, {"version": version})
    return await live.finished(task_id)


def stage(task: dict[str, Any], number: int) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in task["report"]["stages"] if s["number"] == number)
    return found


def step(task: dict[str, Any], number: int, component_type: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        s for s in stage(task, number)["steps"] if s["componentType"] == component_type
    )
    return found


def statuses(task: dict[str, Any]) -> list[str]:
    return [s["status"] for s in task["report"]["stages"]]


async def test_unreachable_compute_tray_fails_the_compute_stage_of_power_on(live: Live) -> None:
    await inject(live, "unreachable", "compute-07")
    task = await run(live)
    error = (
        "1 of 18 Compute failed: compute-07: BMC unreachable (injected fault) "
        "(PowerControl, 3 attempts)"
    )
    assert (task["status"], task["message"]) == ("Failed", f"Stage 3 failed: {error}")
    assert statuses(task) == ["completed", "completed", "failed"]
    compute = step(task, 3, "Compute")
    assert (compute["status"], compute["error"]) == ("failed", error)
    assert (compute["completedComponents"], compute["failedComponents"]) == (17, 1)
    assert stage(task, 3)["error"] == task["report"]["error"] == error
    # The shelves' reachability check needs only some compute BMC to answer.
    assert step(task, 1, "PowerShelf")["completedComponents"] == 8


async def test_every_compute_bmc_unreachable_fails_the_shelf_check_not_the_shelves(
    live: Live,
) -> None:
    await inject(live, "unreachable", componentType="Compute")
    task = await run(live)
    error = (
        "VerifyReachability of Compute failed after PowerShelf PowerControl: "
        "not reachable after 5m: compute-01, compute-02, compute-03, compute-04, compute-05, "
        "compute-06, compute-07, compute-08 and 10 more: BMC unreachable"
    )
    assert (task["status"], task["message"]) == ("Failed", f"Stage 1 failed: {error}")
    shelves = step(task, 1, "PowerShelf")
    assert (shelves["status"], shelves["error"]) == ("failed", error)
    # The shelves came on as asked: none is blamed.
    assert (shelves["completedComponents"], shelves["failedComponents"]) == (8, 0)
    assert statuses(task) == ["failed", "pending", "pending"]


async def test_power_fails_once_is_absorbed_by_the_retry(live: Live) -> None:
    [fault] = await inject(live, "power-fails", "powershelf-03", count=1)
    assert fault["remaining"] == 1
    task = await run(live)
    assert task["status"] == "Succeeded", task
    assert statuses(task) == ["completed"] * 3
    assert step(task, 1, "PowerShelf")["failedComponents"] == 0
    assert await live_faults(live) == []  # it fired once and is spent


async def test_power_fails_as_often_as_the_rule_retries_fails_the_task(live: Live) -> None:
    # The built-in power_on retries PowerControl 3 times.
    await inject(live, "power-fails", "powershelf-03", count=3)
    task = await run(live)
    error = (
        "1 of 8 PowerShelf failed: powershelf-03: BMC rejected power_on (injected fault) "
        "(PowerControl, 3 attempts)"
    )
    assert (task["status"], task["message"]) == ("Failed", f"Stage 1 failed: {error}")
    assert statuses(task) == ["failed", "pending", "pending"]
    shelves = step(task, 1, "PowerShelf")
    assert (shelves["failedComponents"], shelves["error"]) == (1, error)


async def test_power_hangs_times_out_the_verification_naming_the_tray_and_its_state(
    live: Live,
) -> None:
    await inject(live, "power-hangs", "nvswitch-04")
    task = await run(live)
    error = "1 of 9 NVLSwitch failed: nvswitch-04: power state stayed Off after 5m (expected On)"
    assert (task["status"], task["message"]) == ("Failed", f"Stage 2 failed: {error}")
    assert statuses(task) == ["completed", "failed", "pending"]
    switches = step(task, 2, "NVLSwitch")
    assert (switches["completedComponents"], switches["failedComponents"]) == (8, 1)
    assert switches["error"] == error


async def test_firmware_fails_fails_the_firmware_step(live: Live) -> None:
    await live.power_on()
    await inject(live, "firmware-fails", "compute-03")
    task = await firmware(live)
    assert task["status"] == "Failed", task
    compute = step(task, 1, "Compute")
    assert compute["status"] == "failed" and compute["failedComponents"] == 1
    assert compute["error"].startswith(
        "1 of 18 Compute failed: compute-03: firmware update failed: "
        "image rejected (injected fault)"
    )
    assert task["message"] == f"Stage 1 failed: {compute['error']}"


async def test_firmware_hangs_runs_into_the_poll_timeout(live: Live) -> None:
    await live.power_on()
    await inject(live, "firmware-hangs", "nvswitch-02")
    task = await firmware(live)
    assert task["status"] == "Failed", task
    switches = step(task, 1, "NVLSwitch")
    assert switches["status"] == "failed" and switches["failedComponents"] == 1
    assert switches["error"].startswith(
        "1 of 9 NVLSwitch failed: nvswitch-02: firmware update not finished after 45m: "
        "firmware update Running at 50%"
    )


def compute_only_rule(timeout: str) -> dict[str, Any]:
    """power_on of Compute alone (the rack is already fed), bounded by `timeout`."""
    return {
        "name": f"compute within {timeout}",
        "operationType": "PowerControl",
        "operationCode": "power_on",
        "ruleDefinition": {
            "version": "v1",
            "steps": [
                {
                    "componentType": "Compute",
                    "stage": 1,
                    "timeout": timeout,
                    "mainOperation": {"name": "PowerControl"},
                }
            ],
        },
    }


async def test_slow_bmc_still_succeeds_within_the_rules_timeout(live: Live) -> None:
    await live.power_on()
    rule = await live.create_rule(compute_only_rule("1m"))
    await inject(live, "slow:3s", "compute-05", count=1)
    task = await run(live, ruleId=rule)
    assert task["status"] == "Succeeded", task
    assert step(task, 1, "Compute")["completedComponents"] == 18
    assert await live_faults(live) == []


async def test_slow_bmc_fails_a_tight_step_timeout_naming_the_tray(live: Live) -> None:
    await live.power_on()
    rule = await live.create_rule(compute_only_rule("2s"))
    await inject(live, "slow:5s", "compute-05")
    task = await run(live, ruleId=rule)
    assert task["status"] == "Failed", task
    compute = step(task, 1, "Compute")
    assert compute["error"].startswith("step timeout 2s exceeded: "), compute
    assert "compute-05" in compute["error"]
    assert task["message"] == f"Stage 1 failed: {compute['error']}"
