"""What an activity attempt guarantees: it heartbeats through all its work (database
included), it ends itself before Temporal gives up on it, and a power cycle whose first
attempt may have reached the BMC is never sent a second time."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from nico.domain import TaskStatus
from nico.engine import ledger
from nico.engine.activities import EngineActivities
from nico.engine.contracts import TaskWorkflowInput
from nico.engine.payloads import FirmwareQuery, PowerCommand, PowerResult, TrayQuery
from nico.services import Services
from nico.store.models import Tray
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
from tests.support.sqlite_lock import hold_write_lock


def activity_env(start_to_close: float = 60.0) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, start_to_close_timeout=timedelta(seconds=start_to_close)
    )
    return env


async def test_an_activity_heartbeats_while_it_waits_for_the_database(
    services: Services,
) -> None:
    rack = await make_rack(services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    env = activity_env()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    activities = EngineActivities(services, None)
    await activity_env().run(activities.power_status, TrayQuery(shelf.id))  # BMC state exists
    async with services.db.session() as session:  # the row shows a stale state
        await session.execute(
            update(Tray).where(Tray.id == uuid.UUID(shelf.id)).values(power_state="On")
        )
    database = services.settings.data_dir / "nico.db"
    assert database.exists(), "the test expects the default SQLite file"
    holder = hold_write_lock(str(database), 2.5)
    started = asyncio.get_running_loop().time()
    # Reading the BMC is instant; writing the observed state waits for the lock.
    state = await env.run(activities.power_status, TrayQuery(shelf.id))
    assert asyncio.get_running_loop().time() - started >= 2
    holder.join()
    assert state == "Off"
    assert (await load_tray(services, shelf.id)).power_state == "Off"
    assert len(beats) >= 2  # the server would have seen the worker alive throughout


async def test_a_slow_call_ends_with_its_attempt_not_after_it(services: Services) -> None:
    rack = await make_rack(services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    await add_fault(services, rack, FaultKind.SLOW.value, slow_seconds=30)
    env = activity_env(start_to_close=2)
    started = asyncio.get_running_loop().time()
    try:
        await env.run(
            EngineActivities(services, None).power_control,
            PowerCommand(f"{uuid.uuid4()}/main", shelf.id, "power_on"),
        )
    except Exception as exc:
        assert "no answer within 2s" in str(exc)
    else:
        raise AssertionError("a 30s call finished inside a 2s attempt")
    assert asyncio.get_running_loop().time() - started < 2  # cancelled, not abandoned
    await asyncio.sleep(0.2)
    assert await sim_state(services, shelf.id) is None  # and it never reached the BMC


async def test_a_cycle_whose_outcome_cannot_be_known_fails_and_is_not_sent_again(
    services: Services,
) -> None:
    rack = await make_rack(services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    key = f"{uuid.uuid4()}/stage-1/step-0/{shelf.id}/main"
    # What a crashed first attempt leaves when the BMC exposes no reset marker.
    async with services.db.session() as session:
        await ledger.intend(session, key, shelf.id, "power", {"code": "cold_reset"})
    activities = EngineActivities(services, None)
    with pytest.raises(ApplicationError) as failed:
        await activity_env().run(
            activities.power_control, PowerCommand(key, shelf.id, "cold_reset")
        )
    assert failed.value.message.startswith("cold_reset outcome unknown")
    assert failed.value.non_retryable  # never a silent success, never a second cycle
    assert await sim_state(services, shelf.id) is None  # the BMC heard nothing more
    # An idempotent code is simply sent again: "already there" is a no-op.
    on_key = f"{uuid.uuid4()}/stage-1/step-0/{shelf.id}/main"
    async with services.db.session() as session:
        await ledger.intend(session, on_key, shelf.id, "power", {"code": "power_on"})
    result = await activity_env().run(
        activities.power_control, PowerCommand(on_key, shelf.id, "power_on")
    )
    assert result == PowerResult()
    state = await sim_state(services, shelf.id)
    assert state is not None and state.power_ops == 1


async def verified_cold_reset(
    engine: Engine, rack: SimRack, attempt: str, attempts: int
) -> TaskWorkflowInput:
    """A cold_reset task on the rack's shelves, each verified On within 1m."""
    return await make_task(
        engine.services,
        rack,
        rule(
            step(
                "PowerShelf",
                1,
                act("PowerControl", attempt),
                post=[act("VerifyPowerStatus", "1m", "5s", expected_status="on")],
                retry=retry(attempts),
            )
        ),
        operation_code="cold_reset",
    )


async def test_a_cycle_cut_off_before_the_bmc_acted_is_sent_by_the_retry(
    engine: Engine,
) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    # The first call hangs past its 3s attempt (before the BMC acts); its reset marker
    # has not moved, so the retry knows the tray never cycled and sends the reset.
    await add_fault(engine.services, rack, FaultKind.SLOW.value, slow_seconds=10, remaining=1)
    task, _ = await engine.run(await verified_cold_reset(engine, rack, "3s", attempts=3))
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    state = await sim_state(engine.services, shelf.id)
    assert state is not None and (state.power_ops, state.power_cycles) == (1, 1)


async def test_a_cycle_the_bmc_refused_is_retried(engine: Engine) -> None:
    rack = await make_rack(engine.services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    await add_fault(engine.services, rack, FaultKind.POWER_FAIL.value, remaining=1)
    task, _ = await engine.run(await verified_cold_reset(engine, rack, "1m", attempts=2))
    assert task.status == TaskStatus.SUCCEEDED.value, task.message
    state = await sim_state(engine.services, shelf.id)
    assert state is not None and state.power_ops == 1
    async with engine.services.db.session() as session:
        assert await ledger.count_for_tray(session, uuid.UUID(shelf.id), "power") == 1


async def test_a_firmware_job_the_bmc_no_longer_knows_is_a_final_answer(
    services: Services,
) -> None:
    rack = await make_rack(services, compute=0, switches=0, shelves=1)
    shelf = rack.of("PowerShelf")[0]
    observation = await activity_env().run(
        EngineActivities(services, None).observe_firmware, FirmwareQuery(shelf.id, "sim-gone")
    )
    assert observation.error == "BMC knows no firmware job sim-gone"
    assert observation.retryable is False
