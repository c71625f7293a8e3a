"""A restart or reset is Succeeded only when the tray was seen to cycle: its reset marker
(the simulated BMC's boot counter) moved. "It is On now" is not enough."""

from __future__ import annotations

import uuid

from temporalio.testing import ActivityEnvironment

from nico.domain import TaskStatus
from nico.engine import ledger
from nico.engine.activities import EngineActivities
from nico.engine.payloads import PowerCommand, PowerResult
from nico.hardware.interface import TrayRef
from nico.services import Services
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
    sim_state,
    step,
)


async def _power_on(services: Services, rack: SimRack) -> None:
    backend = services.backends.backend("simulator")
    for tray in rack.all:
        ref = await services.backends.tray_ref(tray.id)
        await backend.power_control(ref, "power_on", operation_key=f"{uuid.uuid4()}")


def _restart_rule(attempts: int) -> dict[str, object]:
    verify = [act("VerifyPowerStatus", "30s", "1s", expected_status="on")]
    return rule(step("PowerShelf", 1, act("PowerControl"), post=verify, retry=retry(attempts)))


async def test_a_restart_the_bmc_swallows_fails_although_the_tray_is_on(
    engine: Engine,
) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    await _power_on(engine.services, rack)
    await add_fault(engine.services, rack, FaultKind.POWER_STUCK.value)
    payload = await make_task(engine.services, rack, _restart_rule(2), operation_code="restart")
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.FAILED.value
    assert task.message == (
        "Stage 1 failed: 1 of 1 PowerShelf failed: shelf-01: "
        "BMC accepted restart but the tray did not power-cycle (PowerControl, 2 attempts)"
    )


async def test_a_restart_that_happened_succeeds_with_one_cycle_per_tray(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=2)
    await _power_on(engine.services, rack)
    payload = await make_task(engine.services, rack, _restart_rule(3), operation_code="restart")
    task, _ = await engine.run(payload)
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    for shelf in rack.of("PowerShelf"):
        state = await sim_state(engine.services, shelf.id)
        assert state is not None and state.power_cycles == 1


async def test_a_cut_off_cycle_that_reached_the_bmc_is_done_not_sent_again(
    services: Services,
) -> None:
    rack = await make_rack(services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    await _power_on(services, rack)
    key = f"{uuid.uuid4()}/stage-1/step-0/{shelf.id}/main"
    backend = services.backends.backend("simulator")
    ref: TrayRef = await services.backends.tray_ref(shelf.id)
    # A first attempt recorded its intent with the marker, the BMC cycled the tray, and
    # the worker died before it learned the answer.
    before = await backend.reset_marker(ref)
    async with services.db.session() as session:
        await ledger.intend(session, key, shelf.id, "power", {"code": "restart", "marker": before})
    await backend.power_control(ref, "restart", operation_key=key)
    result = await ActivityEnvironment().run(
        EngineActivities(services, None).power_control, PowerCommand(key, shelf.id, "restart")
    )
    assert result == PowerResult()
    state = await sim_state(services, shelf.id)
    assert state is not None and state.power_cycles == 1  # observed, not sent again
    async with services.db.session() as session:
        assert await ledger.recorded(session, key) is not None


async def test_a_cut_off_cycle_that_never_reached_the_bmc_is_sent(services: Services) -> None:
    rack = await make_rack(services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    await _power_on(services, rack)
    key = f"{uuid.uuid4()}/stage-1/step-0/{shelf.id}/main"
    backend = services.backends.backend("simulator")
    before = await backend.reset_marker(await services.backends.tray_ref(shelf.id))
    async with services.db.session() as session:  # intent written, then the crash
        await ledger.intend(session, key, shelf.id, "power", {"code": "restart", "marker": before})
    result = await ActivityEnvironment().run(
        EngineActivities(services, None).power_control, PowerCommand(key, shelf.id, "restart")
    )
    assert result == PowerResult()
    state = await sim_state(services, shelf.id)
    assert state is not None and state.power_cycles == 1
