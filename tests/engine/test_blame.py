"""A failure is put on what failed: a shelf step whose check of the Compute BMCs fails
names that check and blames no shelf; a failed attempt is one log line, no traceback."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from nico.domain import TaskStatus
from nico.store.simulator import FaultKind
from tests.engine.conftest import Engine
from tests.engine.support import act, add_fault, make_rack, make_task, retry, rule, step


async def test_unreachable_compute_fails_the_shelf_check_not_the_shelves(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=1, shelves=2)
    await add_fault(engine.services, rack, FaultKind.UNREACHABLE.value, component_type="Compute")
    check = act(
        "VerifyReachability",
        "30s",
        "5s",
        component_types=["NVLSwitch", "Compute"],
        require_all=False,
    )
    shelves = step("PowerShelf", 1, act("PowerControl"), post=[check])
    payload = await make_task(engine.services, rack, rule(shelves), trays=rack.all)
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.FAILED.value
    expected = (
        "VerifyReachability of Compute failed after PowerShelf PowerControl: "
        "not reachable after 30s: compute-01, compute-02: BMC unreachable"
    )
    assert task.message == f"Stage 1 failed: {expected}"
    assert task.report is not None
    [shelf_step] = task.report["stages"][0]["steps"]
    assert shelf_step["status"] == "failed"
    assert shelf_step["error"] == expected
    # The shelves did what they were asked, and are not counted failed.
    assert (shelf_step["completedComponents"], shelf_step["failedComponents"]) == (2, 0)


async def test_a_shelfs_own_silence_still_blames_that_shelf(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=1, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    await add_fault(engine.services, rack, FaultKind.UNREACHABLE.value, tray=shelf)
    check = act("VerifyReachability", "20s", "5s", component_types=["PowerShelf"])
    payload = await make_task(
        engine.services,
        rack,
        rule(step("PowerShelf", 1, act("Sleep", duration="1s"), post=[check])),
    )
    task, _ = await engine.run(payload)
    assert task.message == (
        "Stage 1 failed: 1 of 1 PowerShelf failed: shelf-01: not reachable after 20s: "
        "shelf-01: BMC unreachable"
    )


async def test_each_failed_attempt_is_one_warning_line_without_traceback(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    await add_fault(engine.services, rack, FaultKind.UNREACHABLE.value)
    caplog.set_level(logging.DEBUG)
    rule_: dict[str, Any] = rule(step("PowerShelf", 1, act("GetPowerStatus"), retry=retry(3)))
    task, _ = await engine.run(await make_task(engine.services, rack, rule_))
    assert task.status == TaskStatus.FAILED.value
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings if "attempt" in r.getMessage()] == [
        f"power_status attempt {n} failed: BMC unreachable (injected fault)" for n in (1, 2, 3)
    ]
    assert not [r for r in warnings if r.exc_info], [r.getMessage() for r in warnings]
