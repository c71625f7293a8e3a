"""ACPowerCycle on the simulator: the power shelves cut and restore AC, and the task
Succeeds only when the shelves and every tray behind them were seen to cycle (their
reset markers moved), not merely because everything reads On afterwards."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from nico.domain import OperationType, TaskStatus
from nico.engine import hardware_ops, ledger
from nico.engine.activities import EngineActivities
from nico.engine.payloads import PowerCommand
from nico.rules.builtins import builtin_rule
from nico.services import Services
from nico.store.models import TrayHistory
from nico.store.simulator import FaultKind
from tests.engine.conftest import Engine
from tests.engine.support import SimRack, add_fault, make_rack, make_task, sim_state

AC_RULE = builtin_rule(OperationType.POWER_CONTROL, "ac_power_cycle").definition_wire


async def _power_on(services: Services, rack: SimRack) -> None:
    backend = services.backends.backend("simulator")
    for tray in rack.of("PowerShelf") + rack.of("NVLSwitch") + rack.of("Compute"):
        ref = await services.backends.tray_ref(tray.id)
        await backend.power_control(ref, "power_on", operation_key=f"{uuid.uuid4()}")


async def _cycles(services: Services, rack: SimRack) -> dict[str, int]:
    out: dict[str, int] = {}
    for tray in rack.all:
        state = await sim_state(services, tray.id)
        out[tray.name] = state.power_cycles if state is not None else 0
    return out


async def test_an_ac_power_cycle_cycles_every_tray_behind_the_shelf(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=2, switches=1, shelves=1)
    await _power_on(engine.services, rack)
    payload = await make_task(engine.services, rack, AC_RULE, operation_code="ac_power_cycle")

    task, _ = await engine.run(payload)

    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    # One AC cut: the shelf and each compute and switch tray went through Off and back.
    assert set((await _cycles(engine.services, rack)).values()) == {1}
    for tray in rack.all:
        state = await sim_state(engine.services, tray.id)
        assert state is not None and state.power_on
    # Every tray's history says it went through the AC cycle: the shelf's own step row
    # and one for each tray it fed, all Succeeded.
    async with engine.services.db.session() as session:
        rows = (
            await session.execute(
                select(TrayHistory).where(
                    TrayHistory.task_id == uuid.UUID(payload.task_id),
                    TrayHistory.outcome.is_not(None),
                )
            )
        ).scalars()
        by_tray = {str(r.tray_id): r for r in rows}
    assert set(by_tray) == {t.id for t in rack.all}
    for tray in rack.all:
        row = by_tray[tray.id]
        assert (row.outcome, row.message) == ("Succeeded", "ac_power_cycle")
    # The shelf was read On by its step; the fed trays show what nico showed when the
    # shelves' step ended (never read here: the test powered them on behind its back).
    assert by_tray[rack.of("PowerShelf")[0].id].to_value == "On"


async def test_trays_that_do_not_cycle_fail_the_shelf_although_all_read_on(
    engine: Engine,
) -> None:
    rack = await make_rack(engine.services, compute=1, switches=0, shelves=1)
    await _power_on(engine.services, rack)
    # The shelf's BMC accepts the command and does nothing: nothing cycles, all stay On.
    await add_fault(engine.services, rack, FaultKind.POWER_STUCK.value, component_type="PowerShelf")
    payload = await make_task(engine.services, rack, AC_RULE, operation_code="ac_power_cycle")

    task, _ = await engine.run(payload)

    assert task.status == TaskStatus.FAILED.value
    assert "shelf-01: BMC accepted ac_power_cycle but the tray did not power-cycle" in (
        task.message or ""
    )
    assert set((await _cycles(engine.services, rack)).values()) == {0}


async def test_a_shelf_that_cycled_while_its_trays_did_not_fails_naming_them(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    rack = await make_rack(services, compute=1, switches=0, shelves=1)
    await _power_on(services, rack)
    shelf, compute = rack.of("PowerShelf")[0], rack.of("Compute")[0]
    backend = services.backends.backend("simulator")
    shelf_ref = await services.backends.tray_ref(shelf.id)
    compute_before = await backend.reset_marker(await services.backends.tray_ref(compute.id))
    key = f"{uuid.uuid4()}/stage-1/step-0/{shelf.id}/main"
    # An earlier attempt wrote its intent with the markers, the shelf then cycled (a plain
    # restart: its own marker moves, the trays it feeds keep power) and the worker died.
    intent = {
        "code": "ac_power_cycle",
        "marker": await backend.reset_marker(shelf_ref),
        "fed": {compute.id: compute_before},
    }
    async with services.db.session() as session:
        await ledger.intend(session, key, shelf.id, "power", intent)
    await backend.power_control(shelf_ref, "restart", operation_key=key)
    monkeypatch.setattr(hardware_ops, "FED_CYCLE_WINDOW", 0.3)

    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(
            EngineActivities(services, None).power_control,
            PowerCommand(key, shelf.id, "ac_power_cycle"),
        )

    assert failed.value.non_retryable
    assert failed.value.message == (
        f"the shelf carried out ac_power_cycle but {compute.name} did not power-cycle "
        "(their reset markers did not move); the shelf was not cycled again"
    )
    state = await sim_state(services, shelf.id)
    assert state is not None and state.power_cycles == 1  # not sent a second time
    async with services.db.session() as session:
        assert await ledger.recorded(session, key) is not None
