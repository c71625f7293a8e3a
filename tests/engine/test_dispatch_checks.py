"""Checks before anything is touched (capabilities per backend), budgets derived from a
rule, and the activity guarantees: a side effect is sent once, a permanent hardware
error is not retried."""

from __future__ import annotations

import uuid

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from nico.domain import ComponentType, TaskStatus
from nico.engine import ledger
from nico.engine.activities import EngineActivities
from nico.engine.capabilities import TargetTray, capability_gaps
from nico.engine.client import WorkflowState, task_workflow_state
from nico.engine.payloads import PowerCommand
from nico.engine.policy import poll_bounds, step_budget, task_budget
from nico.hardware.interface import Capability
from nico.rules.model import ActionConfig, RuleDefinition, SequenceStep
from nico.services import Services
from tests.engine.conftest import Engine
from tests.engine.support import act, make_rack, make_task, power_on_rule, rule, sim_state, step


async def test_a_rule_needing_a_missing_capability_fails_before_touching_anything(
    engine: Engine,
) -> None:
    rack = await make_rack(engine.services, compute=2, switches=0, shelves=1, backend="redfish")
    payload = await make_task(
        engine.services,
        rack,
        rule(
            step("PowerShelf", 1, act("PowerControl", operation="on")),
            step("Compute", 2, act("BringUpControl")),
        ),
        operation_type="BringUp",
        operation_code="bring_up",
    )
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.FAILED.value
    assert task.message == (
        "BringUpControl needs capability BringUpControl, which the redfish backend lacks "
        "for Compute (compute-01)"
    )
    assert task.report is None
    assert task.started is None
    for tray in rack.all:
        assert await sim_state(engine.services, tray.id) is None
    assert engine.finished_racks == [rack.rack_id]
    assert await task_workflow_state(engine.client, payload.task_id) is WorkflowState.FAILED


async def test_an_unknown_backend_fails_the_task_with_its_name(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=1, switches=0, shelves=1, backend="bogus")
    task, _ = await engine.run(await make_task(engine.services, rack, power_on_rule()))
    assert task.status == TaskStatus.FAILED.value
    assert "unknown backend 'bogus'" in task.message


def test_reachability_needs_the_capability_on_every_listed_targeted_type() -> None:
    definition = RuleDefinition.from_wire(
        rule(
            step(
                "Compute",
                1,
                act("Sleep", duration="1s"),
                pre=[act("VerifyReachability", "1m", "5s", component_types=["PowerShelf"])],
            )
        )
    )
    trays = [
        TargetTray("compute-01", ComponentType.COMPUTE, "simulator"),
        TargetTray("shelf-01", ComponentType.POWERSHELF, "partial"),
    ]

    def capabilities(backend: str, kind: ComponentType) -> frozenset[Capability]:
        return frozenset(Capability) if backend == "simulator" else frozenset()

    assert capability_gaps(definition, trays, capabilities) == [
        "VerifyReachability needs capability Reachability, which the partial backend lacks "
        "for PowerShelf (shelf-01)"
    ]


def test_an_ac_power_cycle_needs_the_capability_wherever_it_is_sent() -> None:
    from nico.hardware.simulator import SimulatorBackend

    sim = SimulatorBackend.__new__(SimulatorBackend)  # capabilities need no state
    trays = [
        TargetTray("shelf-01", ComponentType.POWERSHELF, "simulator"),
        TargetTray("compute-01", ComponentType.COMPUTE, "simulator"),
    ]
    # The task's own code, run by PowerControl without parameters, on shelves and compute.
    by_task = RuleDefinition.from_wire(
        rule(step("PowerShelf", 1, act("PowerControl")), step("Compute", 2, act("PowerControl")))
    )
    gap = (
        "PowerControl needs capability ACPowerCycle, which the simulator backend lacks for "
        "Compute (compute-01)"
    )
    lookup = lambda _backend, kind: sim.capabilities(kind)  # noqa: E731
    operation = ("PowerControl", "ac_power_cycle")
    assert capability_gaps(by_task, trays, lookup, operation) == [gap]
    assert capability_gaps(by_task, trays, lookup, ("PowerControl", "restart")) == []
    # Named in the action's parameters, in any spelling, in any task.
    named = RuleDefinition.from_wire(
        rule(step("Compute", 1, act("PowerControl", operation="ACPowerCycle")))
    )
    assert capability_gaps(named, trays, lookup, ("BringUp", "bring_up")) == [gap]


def test_step_budget_is_its_timeout_or_its_actions_worst_case_over_all_waves() -> None:
    timed = SequenceStep.from_wire(step("Compute", 1, act("PowerControl"), timeout="2m"))
    assert step_budget(timed, 18) == 120
    windowed = SequenceStep.from_wire(
        step("Compute", 1, act("Sleep", duration="10s"), max_parallel=2)
    )
    unbounded = SequenceStep.from_wire(step("Compute", 1, act("Sleep", duration="10s")))
    assert step_budget(windowed, 6) - step_budget(unbounded, 6) == pytest.approx(20)


def test_task_budget_sums_the_longest_step_of_each_targeted_stage() -> None:
    definition = RuleDefinition.from_wire(
        rule(
            step("PowerShelf", 1, act("PowerControl"), timeout="1m"),
            step("Compute", 2, act("PowerControl"), timeout="5m"),
            step("NVLSwitch", 2, act("PowerControl"), timeout="3m"),
            step("UMS", 3, act("PowerControl"), timeout="1h"),  # not targeted
        )
    )
    budget = task_budget(definition, {"PowerShelf": 1, "Compute": 2, "NVLSwitch": 1})
    assert budget == 60 + 300 + 300  # stages 1 and 2, plus the task margin


def test_poll_bounds_come_from_the_action_then_defaults() -> None:
    verify = ActionConfig.from_wire(act("VerifyPowerStatus", "90s", "3s", expected_status="on"))
    assert (poll_bounds(verify).timeout, poll_bounds(verify).interval) == (90, 3)
    firmware = ActionConfig.from_wire(act("FirmwareControl", "1m", poll_interval="20s"))
    assert (poll_bounds(firmware).timeout, poll_bounds(firmware).interval) == (1800, 20)
    wait = ActionConfig.from_wire(act("WaitBringUp"))
    assert (poll_bounds(wait).timeout, poll_bounds(wait).interval) == (900, 30)


async def test_a_power_command_already_in_the_ledger_is_not_sent_again(services: Services) -> None:
    rack = await make_rack(services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    key = f"{uuid.uuid4()}/stage-1/step-0/{shelf.id}/main"
    async with services.db.session() as session:
        await ledger.record(session, key, shelf.id, "power", {"code": "power_on"})
    activities = EngineActivities(services, None)
    await ActivityEnvironment().run(
        activities.power_control, PowerCommand(key, shelf.id, "power_on")
    )
    assert await sim_state(services, shelf.id) is None  # the BMC heard nothing
    fresh = f"{uuid.uuid4()}/stage-1/step-0/{shelf.id}/main"
    await ActivityEnvironment().run(
        activities.power_control, PowerCommand(fresh, shelf.id, "power_on")
    )
    state = await sim_state(services, shelf.id)
    assert state is not None and state.power_ops == 1
    async with services.db.session() as session:
        assert await ledger.recorded(session, fresh) == {"code": "power_on"}


async def test_a_permanent_hardware_error_is_not_retried(services: Services) -> None:
    activities = EngineActivities(services, None)
    gone = str(uuid.uuid4())
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            activities.power_control, PowerCommand(f"k/{gone}", gone, "power_on")
        )
    assert raised.value.non_retryable
    assert "no longer exists" in raised.value.message


async def test_a_rule_covering_none_of_the_targeted_trays_is_refused(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=0, shelves=1)
    payload = await make_task(
        engine.services,
        rack,
        rule(step("PowerShelf", 1, act("PowerControl"))),
        trays=rack.of("Compute"),
    )
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.FAILED.value
    assert task.message == "the rule has no step for Compute, so this task would touch nothing"
