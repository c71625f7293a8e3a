"""How a task runs its rule: stage order, parallel steps, the maxParallel window, retries,
timeouts, fail-fast, skipped steps and the live report (time-skipping Temporal server)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.worker import Replayer

from nico.domain import ComponentType, TaskStatus
from nico.engine.client import WorkflowState, cancel_task_workflow, task_workflow_state
from nico.engine.contracts import STEP_WORKFLOW, TASK_WORKFLOW, TrayTarget
from nico.engine.payloads import StepInput, TaskWorkflowResult
from nico.engine.plan import PlanTray, plan_rule
from nico.engine.worker import WORKFLOWS, workflow_runner
from nico.rules.model import RuleDefinition
from nico.store.simulator import FaultKind
from nico.store.tasks import transition_task
from tests.engine.conftest import Engine
from tests.engine.support import (
    act,
    add_fault,
    fault_remaining,
    load_tray,
    make_rack,
    make_task,
    power_on_rule,
    retry,
    rule,
    sim_state,
    step,
)
from tests.support.seed000 import validator
from tests.support.tasks import load_task
from tests.support.temporal import wait_for_task_workflow


def seconds_between(start: str, end: str) -> float:
    parse = datetime.fromisoformat
    return (parse(end) - parse(start)).total_seconds()


def stage(report: dict[str, Any], number: int) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["stages"] if s["number"] == number)
    return found


def peaks(result: TaskWorkflowResult) -> dict[str, int]:
    return {s.component_type: s.peak_in_flight for s in result.steps}


async def test_power_on_runs_stages_in_order_and_observes_every_tray_on(engine: Engine) -> None:
    rack = await make_rack(engine.services)
    # Listed out of order on purpose: stages run by number, not by position in the list.
    rule_definition = power_on_rule()
    rule_definition["steps"].reverse()
    payload = await make_task(engine.services, rack, rule_definition)
    task, result = await engine.run(payload)
    assert task.status == TaskStatus.SUCCEEDED.value
    assert task.message == "Succeeded"
    assert task.started is not None and task.finished is not None
    report = task.report
    assert report is not None
    assert [s["status"] for s in report["stages"]] == ["completed"] * 3
    assert [s["steps"][0]["componentType"] for s in report["stages"]] == [
        "PowerShelf",
        "NVLSwitch",
        "Compute",
    ]
    compute = stage(report, 3)["steps"][0]
    assert (compute["totalComponents"], compute["completedComponents"]) == (4, 4)
    assert compute["failedComponents"] == 0
    assert list(validator("TaskReportV1").iter_errors(report)) == []
    for tray in rack.all:  # observed state written back for GET /tray
        assert (await load_tray(engine.services, tray.id)).power_state == "On"
    assert engine.finished_racks == [rack.rack_id]
    assert isinstance(result, TaskWorkflowResult)


async def test_a_stage_out_of_physical_order_fails_and_later_stages_stay_untouched(
    engine: Engine,
) -> None:
    rack = await make_rack(engine.services, compute=2)
    rule_definition = rule(
        step("Compute", 1, act("PowerControl"), retry=retry(2)),
        step("PowerShelf", 2, act("PowerControl")),
    )
    task, _ = await engine.run(await make_task(engine.services, rack, rule_definition))
    assert task.status == TaskStatus.FAILED.value
    report = task.report
    assert report is not None
    assert [s["status"] for s in report["stages"]] == ["failed", "pending"]
    assert report["error"] == stage(report, 1)["error"]
    assert report["error"] == (
        "2 of 2 Compute failed: compute-01, compute-02: BMC unreachable: "
        "no PowerShelf of the rack is on (PowerControl, 2 attempts)"
    )
    assert task.message.startswith("Stage 1 failed: 2 of 2 Compute failed")
    for shelf in rack.of("PowerShelf"):
        assert await sim_state(engine.services, shelf.id) is None  # never touched


async def test_steps_of_a_stage_run_in_parallel(engine: Engine, real_engine_waits: None) -> None:
    rack = await make_rack(engine.services, compute=2, switches=2, shelves=0)
    nap = act("Sleep", duration="3s")
    rule_definition = rule(step("Compute", 1, nap), step("NVLSwitch", 1, nap))
    task, _ = await engine.run(await make_task(engine.services, rack, rule_definition))
    assert task.status == TaskStatus.SUCCEEDED.value
    assert task.report is not None
    only = stage(task.report, 1)
    assert [s["status"] for s in only["steps"]] == ["completed", "completed"]
    first, second = only["steps"]
    # Each step slept 3s; they overlapped instead of running one after the other.
    assert seconds_between(second["startedAt"], first["finishedAt"]) > 0
    assert seconds_between(first["startedAt"], second["finishedAt"]) > 0


async def test_max_parallel_bounds_trays_in_flight(engine: Engine, real_engine_waits: None) -> None:
    rack = await make_rack(engine.services, compute=5, switches=5, shelves=0)
    nap = act("Sleep", duration="2s")
    rule_definition = rule(
        step("Compute", 1, nap, max_parallel=2), step("NVLSwitch", 2, nap, max_parallel=0)
    )
    task, result = await engine.run(await make_task(engine.services, rack, rule_definition))
    assert task.status == TaskStatus.SUCCEEDED.value
    assert peaks(result) == {"Compute": 2, "NVLSwitch": 5}
    assert task.report is not None
    windowed = stage(task.report, 1)
    # 5 trays, 2 at a time: three waves of 2s.
    assert seconds_between(windowed["startedAt"], windowed["finishedAt"]) >= 6


async def test_a_step_with_delay_after_takes_what_the_plan_says(
    engine: Engine, real_engine_waits: None
) -> None:
    rack = await make_rack(engine.services, compute=8, switches=0, shelves=0)
    rule_definition = rule(
        step("Compute", 1, act("Sleep", duration="1s"), max_parallel=2, delay_after="60s")
    )
    trays = [PlanTray(t.id, t.name, ComponentType.COMPUTE) for t in rack.of("Compute")]
    planned = plan_rule(RuleDefinition.from_wire(rule_definition), trays)["worstCaseSeconds"]
    task, _ = await engine.run(await make_task(engine.services, rack, rule_definition))
    assert task.status == TaskStatus.SUCCEEDED.value
    assert task.report is not None
    only = stage(task.report, 1)
    # 4 waves of 1s, then delayAfter once (not per wave or tray): the plan's worst case is
    # what the step took.
    assert planned == 64
    assert planned <= seconds_between(only["startedAt"], only["finishedAt"]) < 2 * planned


async def test_failed_attempts_are_retried_with_backoff_until_one_succeeds(
    engine: Engine, real_engine_waits: None
) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    fault = await add_fault(engine.services, rack, FaultKind.POWER_FAIL.value, remaining=2)
    rule_definition = rule(
        step("PowerShelf", 1, act("PowerControl"), retry=retry(3, initial="1s", coefficient=2))
    )
    task, _ = await engine.run(await make_task(engine.services, rack, rule_definition))
    assert task.status == TaskStatus.SUCCEEDED.value
    assert await fault_remaining(engine.services, fault) == 0
    state = await sim_state(engine.services, shelf.id)
    assert state is not None and state.power_ops == 1
    assert task.report is not None
    only = stage(task.report, 1)
    # Waits of 1s then 2s between the three attempts.
    assert seconds_between(only["startedAt"], only["finishedAt"]) >= 3


async def test_retries_are_capped_and_the_error_says_how_often(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    await add_fault(engine.services, rack, FaultKind.POWER_FAIL.value, remaining=5)
    rule_definition = rule(step("PowerShelf", 1, act("PowerControl"), retry=retry(2)))
    task, _ = await engine.run(await make_task(engine.services, rack, rule_definition))
    assert task.status == TaskStatus.FAILED.value
    assert task.report is not None
    assert task.report["error"] == (
        "1 of 1 PowerShelf failed: shelf-01: BMC rejected power_on (injected fault) "
        "(PowerControl, 2 attempts)"
    )


async def test_step_timeout_names_the_unfinished_trays(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=0, shelves=0)
    rule_definition = rule(step("Compute", 1, act("Sleep", duration="10m"), timeout="3s"))
    task, _ = await engine.run(await make_task(engine.services, rack, rule_definition))
    assert task.status == TaskStatus.FAILED.value
    assert task.report is not None
    assert stage(task.report, 1)["error"] == (
        "step timeout 3s exceeded: 2 of 2 Compute unfinished (compute-01, compute-02)"
    )
    assert task.report["stages"][0]["steps"][0]["status"] == "failed"


async def test_a_failing_step_cancels_its_running_siblings(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=1, shelves=1)
    await add_fault(engine.services, rack, FaultKind.POWER_FAIL.value, component_type="NVLSwitch")
    rule_definition = rule(
        step("PowerShelf", 1, act("PowerControl")),
        step("Compute", 2, act("Sleep", duration="1h")),
        step("NVLSwitch", 2, act("PowerControl"), retry=retry(1)),
        step("Compute", 3, act("PowerControl")),
    )
    task, _ = await engine.run(await make_task(engine.services, rack, rule_definition))
    assert task.status == TaskStatus.FAILED.value
    report = task.report
    assert report is not None
    second = stage(report, 2)
    sleeper, failing = second["steps"]
    assert failing["status"] == "failed"
    assert failing["error"].startswith("1 of 1 NVLSwitch failed: nvl-01: BMC rejected")
    assert sleeper["status"] == "failed"
    assert sleeper["error"] == "cancelled: the NVLSwitch step of this stage failed"
    assert seconds_between(second["startedAt"], second["finishedAt"]) < 60  # not an hour
    assert second["error"] == failing["error"]
    assert stage(report, 3)["status"] == "pending"


async def test_after_a_tray_fails_no_new_trays_start_and_the_error_counts_them(
    engine: Engine, real_engine_waits: None
) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=6)
    first = rack.of("PowerShelf")[0]
    await add_fault(engine.services, rack, FaultKind.POWER_FAIL.value, tray=first)
    rule_definition = rule(
        step(
            "PowerShelf",
            1,
            act("PowerControl"),
            post=[act("Sleep", duration="2s")],  # shelf-02 is still in flight when shelf-01 fails
            max_parallel=2,
            retry=retry(1),
        )
    )
    task, _ = await engine.run(await make_task(engine.services, rack, rule_definition))
    assert task.status == TaskStatus.FAILED.value
    assert task.report is not None
    shelves = task.report["stages"][0]["steps"][0]
    assert shelves["error"] == (
        "1 of 6 PowerShelf failed: shelf-01: BMC rejected power_on (injected fault) "
        "(PowerControl); 4 not started"
    )
    assert (shelves["completedComponents"], shelves["failedComponents"]) == (1, 1)
    for tray in rack.of("PowerShelf")[2:]:
        assert await sim_state(engine.services, tray.id) is None


async def test_steps_for_untargeted_types_are_skipped(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=1, shelves=1)
    payload = await make_task(
        engine.services,
        rack,
        rule(
            step("PowerShelf", 1, act("PowerControl")),
            step("NVLSwitch", 2, act("Sleep", duration="1s")),
            step("PowerShelf", 2, act("GetPowerStatus")),
        ),
        trays=rack.of("NVLSwitch"),
    )
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.SUCCEEDED.value
    assert task.report is not None
    first, second = task.report["stages"]
    assert first["status"] == "completed"
    assert first["steps"] == [
        {"componentType": "PowerShelf", "status": "skipped", "totalComponents": 0}
    ]
    assert [s["status"] for s in second["steps"]] == ["completed", "skipped"]


async def test_the_report_and_message_advance_while_the_task_runs(engine: Engine) -> None:
    engine.services.settings.sim_latency = 0.3  # read when the simulator is first used
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=4)
    rule_definition = rule(
        step("PowerShelf", 1, act("PowerControl"), max_parallel=1),
        step("PowerShelf", 2, act("GetPowerStatus")),
    )
    payload = await make_task(engine.services, rack, rule_definition)
    await engine.start(payload)
    seen: set[int] = set()
    for _ in range(200):
        task = await load_task(engine.services, payload.task_id)
        if task.report and task.status == TaskStatus.RUNNING.value:
            live = task.report["stages"][0]["steps"][0]
            if live["status"] == "running":
                seen.add(live["completedComponents"])
                assert task.message == "Running stage 1/2: PowerShelf"
        if task.status != TaskStatus.RUNNING.value and task.status != TaskStatus.PENDING.value:
            break
        await asyncio.sleep(0.05)
    final, _ = await engine.run(payload)
    assert final.status == TaskStatus.SUCCEEDED.value
    assert {1, 2} & seen, f"no live count was seen: {seen}"


async def test_cancel_finalizes_the_report_and_terminates_the_task(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=0, shelves=0)
    payload = await make_task(
        engine.services,
        rack,
        rule(
            step("Compute", 1, act("Sleep", duration="1h")),
            step("Compute", 2, act("GetPowerStatus")),
        ),
    )
    await engine.start(payload)
    for _ in range(100):
        task = await load_task(engine.services, payload.task_id)
        if task.report and task.report["stages"][0]["status"] == "running":
            break
        await asyncio.sleep(0.05)
    assert await cancel_task_workflow(engine.client, payload.task_id)
    outcome = await wait_for_task_workflow(engine.env, payload.task_id)
    assert isinstance(outcome, WorkflowFailureError)
    task = await load_task(engine.services, payload.task_id)
    assert task.status == TaskStatus.TERMINATED.value
    assert task.message == "Cancelled by user"
    assert task.report is not None
    first, second = task.report["stages"]
    assert (first["status"], first["error"]) == ("failed", "cancelled by user")
    assert first["steps"][0]["status"] == "failed"
    assert "finishedAt" in first
    assert second["status"] == "pending"
    assert task.report["error"] == "cancelled by user"
    assert await task_workflow_state(engine.client, payload.task_id) is WorkflowState.CANCELED
    assert not await cancel_task_workflow(engine.client, payload.task_id)
    assert engine.finished_racks == [rack.rack_id]


async def test_a_cancel_after_a_steps_trays_finished_leaves_that_step_completed(
    engine: Engine,
) -> None:
    rack = await make_rack(engine.services, compute=2, switches=0, shelves=0)
    payload = await make_task(
        engine.services,
        rack,
        rule(
            step("Compute", 1, act("GetPowerStatus"), delay_after="1h"),
            step("Compute", 2, act("GetPowerStatus")),
        ),
    )
    await engine.start(payload)
    for _ in range(200):  # both trays done; the step waits out its delayAfter
        task = await load_task(engine.services, payload.task_id)
        if task.report and task.report["stages"][0]["steps"][0].get("completedComponents") == 2:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the step's trays never showed as completed")
    assert await cancel_task_workflow(engine.client, payload.task_id)
    await wait_for_task_workflow(engine.env, payload.task_id)
    task = await load_task(engine.services, payload.task_id)
    assert task.status == TaskStatus.TERMINATED.value
    assert task.report is not None
    first, second = task.report["stages"]
    only = first["steps"][0]
    assert (only["status"], only["completedComponents"], only["failedComponents"]) == (
        "completed",
        2,
        0,
    )
    assert second["status"] == "pending"


async def test_a_task_no_longer_pending_is_left_alone(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=1, switches=0, shelves=1)
    payload = await make_task(engine.services, rack, power_on_rule())
    async with engine.services.db.session() as session:
        await transition_task(session, uuid.UUID(payload.task_id), TaskStatus.TERMINATED)
    task, result = await engine.run(payload)
    assert task.status == TaskStatus.TERMINATED.value
    assert task.report is None
    assert isinstance(result, TaskWorkflowResult) and result.status == "Terminated"
    for tray in rack.all:
        assert await sim_state(engine.services, tray.id) is None


async def test_starting_twice_runs_once_and_states_are_reported(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=1, switches=0, shelves=1)
    payload = await make_task(engine.services, rack, power_on_rule())
    assert await task_workflow_state(engine.client, payload.task_id) is WorkflowState.MISSING
    await engine.start(payload)
    await engine.start(payload)  # a retried dispatch: no error, no second run
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.SUCCEEDED.value
    assert await task_workflow_state(engine.client, payload.task_id) is WorkflowState.COMPLETED
    shelf = await sim_state(engine.services, rack.of("PowerShelf")[0].id)
    assert shelf is not None and shelf.power_ops == 1


async def test_cancel_interrupts_a_hardware_call_in_flight(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    # Slower than a cancel takes to reach a running activity: Temporal delivers it with a
    # heartbeat, which the SDK sends at most every 0.8 x the heartbeat timeout (4 s); a
    # 4 s call raced that delivery and sometimes reached the BMC first.
    await add_fault(engine.services, rack, FaultKind.SLOW.value, slow_seconds=10)
    payload = await make_task(
        engine.services, rack, rule(step("PowerShelf", 1, act("PowerControl")))
    )
    await engine.start(payload)
    for _ in range(100):
        task = await load_task(engine.services, payload.task_id)
        if task.status == TaskStatus.RUNNING.value:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the power command is now waiting on the slow BMC
    assert await cancel_task_workflow(engine.client, payload.task_id)
    await wait_for_task_workflow(engine.env, payload.task_id)
    assert (await load_task(engine.services, payload.task_id)).status == "Terminated"
    await asyncio.sleep(10)  # past the moment the command would have reached the BMC
    assert await sim_state(engine.services, shelf.id) is None


async def run_directly(engine: Engine, workflow: str, arg: Any, workflow_id: str) -> Any:
    """Start a workflow as is, bypassing the client's checks of the rule, and wait for it
    in real time (these end within seconds)."""
    handle = await engine.client.start_workflow(
        workflow,
        arg,
        id=workflow_id,
        task_queue=engine.services.settings.temporal_task_queue,
        execution_timeout=timedelta(hours=2),
    )
    for _ in range(200):
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            break
        await asyncio.sleep(0.05)
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        return exc


async def test_a_rule_snapshot_the_engine_cannot_read_fails_the_task(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=1, switches=0, shelves=0)
    broken = rule({"componentType": "Compute", "stage": 1})  # no mainOperation
    payload = await make_task(engine.services, rack, broken)
    result = await run_directly(engine, TASK_WORKFLOW, payload, payload.task_id)
    task = await load_task(engine.services, payload.task_id)
    assert task.status == TaskStatus.FAILED.value
    assert task.message == "internal error: KeyError: 'mainOperation'"
    assert task.report is None  # it never began
    assert isinstance(result, WorkflowFailureError)  # ended, not retried until it times out
    assert await task_workflow_state(engine.client, payload.task_id) is WorkflowState.FAILED
    assert engine.finished_racks == [rack.rack_id]  # the rack's queue can move on


async def test_a_step_the_engine_cannot_read_fails_instead_of_hanging(engine: Engine) -> None:
    step_input = StepInput(
        task_id=str(uuid.uuid4()),
        stage=1,
        position=0,
        step={"componentType": "Compute", "stage": 1},  # no mainOperation
        trays=[TrayTarget(str(uuid.uuid4()), "compute-01", "Compute")],
        task_trays=[],
        operation_type="PowerControl",
        operation_code="power_on",
        info={},
    )
    result = await run_directly(engine, STEP_WORKFLOW, step_input, f"step-{uuid.uuid4()}")
    assert (result["status"], result["total"], result["completed"]) == ("failed", 1, 0)
    assert result["error"] == "internal error: KeyError: 'mainOperation'"


async def test_recorded_histories_replay_deterministically(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=3, switches=1, shelves=1)
    await add_fault(engine.services, rack, FaultKind.POWER_FAIL.value, remaining=1)
    payload = await make_task(engine.services, rack, power_on_rule(max_parallel=2))
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.SUCCEEDED.value
    # The production worker's sandbox, so replay checks what the worker runs. Steps are
    # activities of the task workflow now: its history is the whole task.
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=workflow_runner())
    history = await engine.client.get_workflow_handle(payload.task_id).fetch_history()
    await replayer.replay_workflow(history)  # raises on any nondeterminism
