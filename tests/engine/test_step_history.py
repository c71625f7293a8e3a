"""Every finished power or firmware step writes one history row per tray: from → to,
the task and who asked for it, and how the tray ended; nothing for other steps, and
nothing twice."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from nico.domain import TaskStatus
from nico.engine.contracts import TaskWorkflowInput
from nico.services import Services
from nico.store.models import Task, TrayHistory
from nico.store.simulator import FaultKind
from tests.engine.conftest import Engine
from tests.engine.support import (
    SimRack,
    act,
    add_fault,
    make_rack,
    make_task,
    retry,
    rule,
    step,
)

ON = [act("VerifyPowerStatus", "30s", "1s", expected_status="on")]


async def _asked_by(services: Services, payload: TaskWorkflowInput, subject: str) -> None:
    async with services.db.session() as session:
        await session.execute(
            update(Task).where(Task.id == uuid.UUID(payload.task_id)).values(created_by=subject)
        )


async def _step_rows(services: Services, task_id: str) -> list[TrayHistory]:
    async with services.db.session() as session:
        rows = await session.execute(
            select(TrayHistory)
            .where(TrayHistory.task_id == uuid.UUID(task_id), TrayHistory.outcome.is_not(None))
            .order_by(TrayHistory.at, TrayHistory.id)
        )
        return list(rows.scalars())


def _names(rack: SimRack) -> dict[uuid.UUID, str]:
    return {uuid.UUID(t.id): t.name for t in rack.all}


async def test_a_power_step_writes_one_row_per_tray_with_from_to_and_outcome(
    engine: Engine,
) -> None:
    rack = await make_rack(engine.services, compute=2, switches=0, shelves=1)
    payload = await make_task(
        engine.services,
        rack,
        rule(
            step("PowerShelf", 1, act("PowerControl"), post=ON),
            step("Compute", 2, act("PowerControl"), post=ON),
            # A verify-only step is not a power step: it writes no row.
            step("Compute", 3, act("VerifyPowerStatus", "30s", "1s", expected_status="on")),
        ),
    )
    await _asked_by(engine.services, payload, "alice")

    task, _ = await engine.run(payload)

    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    rows = await _step_rows(engine.services, payload.task_id)
    names = _names(rack)
    assert sorted(names[r.tray_id] for r in rows) == ["compute-01", "compute-02", "shelf-01"]
    for row in rows:
        # `from` is what nico showed before the step: these trays were never read.
        assert (row.kind, row.from_value, row.to_value) == ("power", "Unknown", "On")
        assert (row.outcome, row.message, row.source) == ("Succeeded", "power_on", "task")
        assert row.created_by == "alice" and row.rack_id == rack.rack_id
    # The shelf's step finished before the compute step started.
    assert names[rows[0].tray_id] == "shelf-01"


async def test_a_failed_step_names_each_trays_outcome(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=2)
    shelf = rack.of("PowerShelf")[0]
    await add_fault(engine.services, rack, FaultKind.POWER_FAIL.value, tray=shelf)
    payload = await make_task(
        engine.services,
        rack,
        rule(step("PowerShelf", 1, act("PowerControl"), post=ON, retry=retry(1), max_parallel=1)),
    )

    task, _ = await engine.run(payload)

    assert task.status == TaskStatus.FAILED.value
    rows = {_names(rack)[r.tray_id]: r for r in await _step_rows(engine.services, payload.task_id)}
    assert rows["shelf-01"].outcome == "Failed"
    assert (
        rows["shelf-01"].message
        == "power_on: BMC rejected power_on (injected fault) (PowerControl)"
    )
    # Fail-fast: with one tray at a time, the second shelf never started.
    assert (rows["shelf-02"].outcome, rows["shelf-02"].message) == ("NotStarted", "power_on")


async def test_a_firmware_step_writes_versions_before_and_after(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1, firmware="1.0.0")
    power = await make_task(
        engine.services, rack, rule(step("PowerShelf", 1, act("PowerControl"), post=ON))
    )
    assert (await engine.run(power))[0].status == TaskStatus.SUCCEEDED.value
    payload = await make_task(
        engine.services,
        rack,
        rule(
            step(
                "PowerShelf",
                1,
                act("FirmwareControl", poll_interval="1s", poll_timeout="1m"),
                post=[act("VerifyFirmwareVersion")],
            )
        ),
        operation_type="FirmwareControl",
        operation_code="upgrade",
        info={"version": "2.0.0"},
    )

    task, _ = await engine.run(payload)

    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    [row] = await _step_rows(engine.services, payload.task_id)
    assert (row.kind, row.from_value, row.to_value) == ("firmware", "1.0.0", "2.0.0")
    assert (row.outcome, row.message) == ("Succeeded", "upgrade")


async def test_a_retried_activity_does_not_write_the_rows_twice(services: Services) -> None:
    from nico.engine import payloads as p
    from nico.engine.step_history import TrayEnd, record_step
    from nico.store.history import HistoryKind

    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    payload = await make_task(services, rack, rule(step("Compute", 1, act("PowerControl"))))
    [tray] = rack.all
    data = p.StepInput(payload.task_id, 1, 0, {}, [tray], [tray], "PowerControl", "power_on", {})
    ends = [TrayEnd(tray, "completed", "", "Off", "On")]
    for _ in range(2):  # the attempt that wrote them died before answering; its retry
        await record_step(services, data, HistoryKind.POWER, "power_on", "completed", ends)
    assert len(await _step_rows(services, payload.task_id)) == 1
