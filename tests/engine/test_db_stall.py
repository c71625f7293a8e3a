"""A database call that stalls without failing (SQLite's write lock held by another
writer) is nico's outage when a hardware attempt's deadline cuts it, not a BMC that did
not answer; a deadline that cuts the BMC's own time stays the hardware's.

The lock is a real one: another connection's write transaction on the SQLite file, which
nico's writes wait behind (busy_timeout) with no error."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import update
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from nico.engine import step_runner
from nico.engine.activities import EngineActivities
from nico.engine.infra import watching
from nico.engine.payloads import Observation, PowerCommand
from nico.engine.retries import INFRA, INFRA_ERROR_TYPE
from nico.engine.step_runner import observe
from nico.hardware.simulator import SimulatorBackend
from nico.services import Services
from nico.store.models import Tray
from nico.store.simulator import FaultKind
from tests.engine.support import act, add_fault, make_rack, retry, sim_state, step
from tests.engine.test_activity_guarantees import activity_env
from tests.engine.test_outage_accounting import step_activity
from tests.engine.test_step_activity import step_input
from tests.support.sqlite_lock import hold_write_lock


def database_file(services: Services) -> str:
    path = services.settings.data_dir / "nico.db"
    assert path.exists(), "the test expects the default SQLite file"
    return str(path)


async def test_a_command_that_meets_a_locked_database_completes_once_it_is_released(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PowerControl with one 1 s attempt: the command's write waits 2 s behind another
    writer's lock, so the attempt's deadline cuts it with no error seen. The tray is On
    once the lock is released. Before, the tray failed with "no answer within 1s
    (PowerControl)", as if its BMC had been silent."""
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    original = SimulatorBackend.power_control
    holders = []

    async def power_control(self: SimulatorBackend, *args: Any, **kwargs: Any) -> None:
        if not holders:  # the first command meets the lock
            holders.append(hold_write_lock(database_file(services), 2.0))
        await original(self, *args, **kwargs)

    monkeypatch.setattr(SimulatorBackend, "power_control", power_control)
    definition = step("Compute", 1, act("PowerControl", "1s"), retry=retry(1))
    result = await asyncio.wait_for(
        ActivityEnvironment().run(
            EngineActivities(services, None).run_step, step_input(rack, definition)
        ),
        30,
    )
    assert (result.status, result.completed, result.error) == ("completed", 1, None), result
    state = await sim_state(services, rack.of("Compute")[0].id)
    assert state is not None and state.power_on
    holders[0].join()


async def test_an_attempt_that_recovered_from_a_stall_still_gives_the_bmc_its_whole_time(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PowerControl with one 2 s attempt: the command's write waits 1.5 s behind another
    writer's lock, which is then released, and the BMC takes 1.2 s. The tray is On: the
    stall pushed the attempt's deadline back, as a recovered outage does. Before, the
    deadline cut the BMC at 2 s ("no answer within 2s")."""
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    tray = rack.of("Compute")[0]
    original = SimulatorBackend.power_control
    holders = []

    async def power_control(self: SimulatorBackend, *args: Any, **kwargs: Any) -> None:
        if not holders:
            holders.append(hold_write_lock(database_file(services), 1.5))
            await stale_power_write(services, tray.id)  # waits for the lock
            await asyncio.sleep(1.2)  # the BMC's own time
        await original(self, *args, **kwargs)

    monkeypatch.setattr(SimulatorBackend, "power_control", power_control)
    definition = step("Compute", 1, act("PowerControl", "2s"), retry=retry(1))
    result = await asyncio.wait_for(
        ActivityEnvironment().run(
            EngineActivities(services, None).run_step, step_input(rack, definition)
        ),
        30,
    )
    holders[0].join()
    assert (result.status, result.completed, result.error) == ("completed", 1, None), result


async def test_a_hanging_bmc_still_fails_on_its_attempts(services: Services) -> None:
    """The simulator's BMC takes 30 s (SLOW fault) while the database is fine: each 1 s
    attempt is cut in the BMC's time, and the tray fails on its two attempts."""
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    await add_fault(services, rack, FaultKind.SLOW.value, slow_seconds=30)
    definition = step("Compute", 1, act("PowerControl", "1s"), retry=retry(2, "1s"))
    began = time.monotonic()
    result = await asyncio.wait_for(
        ActivityEnvironment().run(
            EngineActivities(services, None).run_step, step_input(rack, definition)
        ),
        30,
    )
    assert (result.status, result.failed) == ("failed", 1), result
    assert result.error is not None
    assert "no answer within 1s (PowerControl, 2 attempts)" in result.error
    assert "database" not in result.error
    assert time.monotonic() - began < 10


async def stale_power_write(services: Services, tray_id: str) -> None:
    async with services.db.session() as session:
        await session.execute(
            update(Tray).where(Tray.id == uuid.UUID(tray_id)).values(power_state="On")
        )


async def test_a_poll_read_cut_while_its_write_waits_for_the_lock_is_no_bmc_answer(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status read (1 s per read) whose BMC answers at once, then whose recording waits
    behind a 2 s lock: the read is nico's database's outage, not "no answer"."""
    monkeypatch.setattr(step_runner, "POLL_ATTEMPT_TIMEOUT", 1.0)
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    tray = rack.of("Compute")[0]
    holder = hold_write_lock(database_file(services), 2.0)

    async def read() -> Observation:
        await stale_power_write(services, tray.id)
        return Observation(state="On")

    with watching():
        obs = await observe(read)
    holder.join()
    assert obs.infra, obs
    assert obs.error is not None and obs.error.startswith("nico's database did not answer")


async def test_a_poll_read_that_recovered_from_a_stall_still_gives_the_bmc_its_whole_time(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status read (2 s per read) whose write waits 1.5 s behind another writer's lock,
    which is then released, and whose BMC then takes 1.2 s: the read answers On. The
    stall pushed the read's deadline back, as it does a hardware attempt's. Before, the
    read was cut at 2 s in the BMC's time: "no answer within 2s", a read lost."""
    monkeypatch.setattr(step_runner, "POLL_ATTEMPT_TIMEOUT", 2.0)
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    tray = rack.of("Compute")[0]
    holder = hold_write_lock(database_file(services), 1.5)

    async def read() -> Observation:
        await stale_power_write(services, tray.id)  # waits for the lock
        await asyncio.sleep(1.2)  # the BMC's own time
        return Observation(state="On")

    with watching():
        obs = await observe(read)
    holder.join()
    assert (obs.state, obs.error) == ("On", None), obs


async def test_a_wait_cut_just_after_it_began_is_the_hardwares_time(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The BMC takes 0.95 s of a 1 s read, then the write meets the lock and is cut after
    a moment: the BMC used up the time, so it is "no answer" (infra.MIN_STALL)."""
    monkeypatch.setattr(step_runner, "POLL_ATTEMPT_TIMEOUT", 1.0)
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    tray = rack.of("Compute")[0]
    holder = hold_write_lock(database_file(services), 2.0)

    async def read() -> Observation:
        await asyncio.sleep(0.95)  # the BMC's own time
        await stale_power_write(services, tray.id)
        return Observation(state="On")

    with watching():
        obs = await observe(read)
    holder.join()
    assert (obs.infra, obs.error) == (False, "no answer within 1s")


async def test_a_per_call_activity_cut_while_its_write_waits_is_no_hardware_attempt(
    services: Services,
) -> None:
    """A power command of the per-call activities (2 s start-to-close) whose write waits
    behind a 4 s lock: the attempt ends as nico's database outage (not a hardware
    attempt: the workflow waits on INFRA), not as "no answer within 2s"."""
    rack = await make_rack(services, compute=1, switches=0, shelves=0)
    tray = rack.of("Compute")[0]
    holder = hold_write_lock(database_file(services), 4.0)
    with pytest.raises(ApplicationError) as failed:
        await activity_env(start_to_close=2).run(
            EngineActivities(services, None).power_control,
            PowerCommand(f"{uuid.uuid4()}/main", tray.id, "power_on"),
        )
    holder.join()
    assert failed.value.type == INFRA_ERROR_TYPE, failed.value
    assert failed.value.message.startswith("nico's database did not answer")


async def test_a_step_timeout_does_not_count_a_stall_its_trays_waited_through(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2 s step of three trays whose power commands all wait 3 s behind another
    writer's lock (their 5 s attempts outlast it): the step completes. Its deadline is
    pushed back by the stall once, not once per tray."""
    rack = await make_rack(services, compute=3, switches=0, shelves=0)
    original = SimulatorBackend.power_control
    holders = []

    async def power_control(self: SimulatorBackend, *args: Any, **kwargs: Any) -> None:
        if not holders:
            holders.append(hold_write_lock(database_file(services), 3.0))
        await original(self, *args, **kwargs)

    monkeypatch.setattr(SimulatorBackend, "power_control", power_control)
    data = step_input(rack, step("Compute", 1, act("PowerControl", "5s"), timeout="2s"))
    data.limit = data.budget = 2.0
    result = await asyncio.wait_for(
        step_activity(2.0, INFRA.total).run(EngineActivities(services, None).run_step, data),
        30,
    )
    holders[0].join()
    assert (result.status, result.completed, result.error) == ("completed", 3, None), result


def test_a_stall_that_held_up_many_trays_at_once_counts_once_for_their_step() -> None:
    with watching() as step_scope:
        for began in (10.0, 10.5, 11.0):  # three trays, held up until the lock went
            with watching() as attempt:
                attempt.stalled(began, 13.0)
            assert attempt.spent() == 13.0 - began
        with watching() as attempt:
            attempt.stalled(20.0, 21.0)  # a later stall adds its own time
    assert step_scope.spent() == 4.0
