"""Record the workflow histories that `test_replay.py` replays against the current code.

Not collected by `make test` (the name does not start with `test_`). Run it on purpose,
with the code whose histories you want to keep, before changing workflow code:

    NICO_RECORD_HISTORIES=1 .venv/bin/python -m pytest -q tests/engine/record_histories.py

Each scenario runs one path of the workflows on the time-skipping server (small racks,
zero-latency simulator) and writes `tests/engine/histories/<scenario>.json`: the task
workflow's history and those of its step children, fetched with
`WorkflowHandle.fetch_history()`. Existing files are overwritten; commit only histories
of code that was released, never re-record a path after changing its code (that would
hide the very break the replay test exists to catch). `NICO_RECORD_HISTORIES_PREFIX`
prepends to every file name, so a release's paths go to new files next to the older
ones (`step_activity_` holds the first ones that run steps as `run_step` activities):

    NICO_RECORD_HISTORIES=1 NICO_RECORD_HISTORIES_PREFIX=step_activity_ \
        .venv/bin/python -m pytest -q tests/engine/record_histories.py
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.service import RPCError

from nico.domain import OperationType, TaskStatus
from nico.engine.client import cancel_task_workflow, start_task_workflow
from nico.engine.contracts import TaskWorkflowInput
from nico.rules.builtins import builtin_rule
from nico.rules.model import RuleDefinition
from nico.services import Services
from nico.store.simulator import FaultKind
from tests.engine.conftest import Engine
from tests.engine.support import act, add_fault, make_rack, make_task, retry, rule, step
from tests.support.tasks import load_task
from tests.support.temporal import running_worker, wait_for_task_workflow

HISTORIES = Path(__file__).parent / "histories"
PREFIX = os.environ.get("NICO_RECORD_HISTORIES_PREFIX", "")

pytestmark = pytest.mark.skipif(
    not os.environ.get("NICO_RECORD_HISTORIES"),
    reason="records histories only when NICO_RECORD_HISTORIES is set",
)


async def _save(engine: Engine, scenario: str, payload: TaskWorkflowInput) -> None:
    """The task workflow's history and every step child's, in one file per scenario."""
    ids = [payload.task_id]
    rule_definition = RuleDefinition.from_wire(payload.rule_definition)
    for stage in rule_definition.stages():
        for position, _ in enumerate(stage.steps):
            ids.append(f"{payload.task_id}/stage-{stage.number}/step-{position}")
    workflows: list[dict[str, Any]] = []
    for workflow_id in ids:
        try:
            history = await engine.client.get_workflow_handle(workflow_id).fetch_history()
        except RPCError:
            continue  # a skipped step has no child
        if not history.events:
            continue
        recorded = _without_stack_traces(json.loads(history.to_json()))
        workflows.append({"id": workflow_id, "history": recorded})
    HISTORIES.mkdir(exist_ok=True)
    path = HISTORIES / f"{PREFIX}{scenario}.json"
    path.write_text(json.dumps({"scenario": scenario, "workflows": workflows}, indent=None))


def _without_stack_traces(value: Any) -> Any:
    """Drop failure stack traces: they name the recording machine's paths, and replay
    never reads them."""
    if isinstance(value, dict):
        return {k: _without_stack_traces(v) for k, v in value.items() if k != "stackTrace"}
    if isinstance(value, list):
        return [_without_stack_traces(v) for v in value]
    return value


async def _builtin(
    engine: Engine,
    kind: OperationType,
    code: str,
    *,
    powered: bool = False,
    scenario: str | None = None,
    firmware: str = "1.0.0",
    **info: Any,
) -> None:
    rack = await make_rack(engine.services, compute=2, switches=1, shelves=1, firmware=firmware)
    if powered:  # firmware needs the BMCs fed: power the rack on first (not recorded)
        power = builtin_rule(OperationType.POWER_CONTROL, "power_on").definition_wire
        task, _ = await engine.run(await make_task(engine.services, rack, power))
        assert task.status == TaskStatus.SUCCEEDED.value, task.message
    payload = await make_task(
        engine.services,
        rack,
        builtin_rule(kind, code).definition_wire,
        operation_type=kind.value,
        operation_code=code,
        info=info,
    )
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    await _save(engine, scenario or f"{kind.value.lower()}_{code}", payload)


async def test_power_on(engine: Engine) -> None:
    await _builtin(engine, OperationType.POWER_CONTROL, "power_on")


async def test_power_off(engine: Engine) -> None:
    await _builtin(engine, OperationType.POWER_CONTROL, "power_off")


async def test_power_cycle(engine: Engine) -> None:
    await _builtin(engine, OperationType.POWER_CONTROL, "restart")


async def test_ac_power_cycle(engine: Engine) -> None:
    await _builtin(engine, OperationType.POWER_CONTROL, "ac_power_cycle", powered=True)


async def test_firmware(engine: Engine) -> None:
    await _builtin(engine, OperationType.FIRMWARE_CONTROL, "upgrade", powered=True, version="2.0.0")


async def test_firmware_skip(engine: Engine) -> None:
    # The trays already run the version: every one is skipped (report outcomes recorded
    # under the `firmware-outcomes` marker).
    await _builtin(
        engine,
        OperationType.FIRMWARE_CONTROL,
        "upgrade",
        powered=True,
        scenario="firmwarecontrol_upgrade_skip",
        version="1.0.0",
    )


async def test_bring_up(engine: Engine) -> None:
    await _builtin(engine, OperationType.BRING_UP, "bring_up")


async def test_cancel(engine: Engine) -> None:
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
    for _ in range(200):
        task = await load_task(engine.services, payload.task_id)
        if task.report and task.report["stages"][0]["status"] == "running":
            break
        await asyncio.sleep(0.05)
    assert await cancel_task_workflow(engine.client, payload.task_id)
    await wait_for_task_workflow(engine.env, payload.task_id)
    task = await load_task(engine.services, payload.task_id)
    assert task.status == TaskStatus.TERMINATED.value
    await _save(engine, "cancel", payload)


async def test_fail_fast(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=1, shelves=1)
    await add_fault(engine.services, rack, FaultKind.POWER_FAIL.value, component_type="NVLSwitch")
    payload = await make_task(
        engine.services,
        rack,
        rule(
            step("PowerShelf", 1, act("PowerControl")),
            step("Compute", 2, act("Sleep", duration="1h")),
            step("NVLSwitch", 2, act("PowerControl"), retry=retry(2)),
            step("Compute", 3, act("PowerControl")),
        ),
    )
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.FAILED.value
    await _save(engine, "fail_fast", payload)


async def test_timeout(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=0, shelves=0)
    payload = await make_task(
        engine.services, rack, rule(step("Compute", 1, act("Sleep", duration="1h"), timeout="3s"))
    )
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.FAILED.value
    await _save(engine, "timeout", payload)


async def test_queue_promotion(engine: Engine, services: Services) -> None:
    """The second task of a rack is started from the first one's `on_task_finished` hook,
    as the task manager's queue promotion does."""
    rack = await make_rack(services, compute=1, switches=0, shelves=1)
    power = builtin_rule(OperationType.POWER_CONTROL, "power_on").definition_wire
    first = await make_task(services, rack, power)
    second = await make_task(services, rack, power)
    promoted: list[uuid.UUID] = []

    async def promote(rack_id: uuid.UUID) -> None:
        if not promoted:
            promoted.append(rack_id)
            await start_task_workflow(engine.client, services.settings, second)

    async with running_worker(engine.client, services, on_task_finished=promote):
        await start_task_workflow(engine.client, services.settings, first)
        await wait_for_task_workflow(engine.env, first.task_id)
        for _ in range(200):
            if promoted:
                break
            await asyncio.sleep(0.05)
        await wait_for_task_workflow(engine.env, second.task_id)
    assert (await load_task(services, second.task_id)).status == TaskStatus.SUCCEEDED.value
    await _save(engine, "queue_promotion_first", first)
    await _save(engine, "queue_promotion_second", second)
