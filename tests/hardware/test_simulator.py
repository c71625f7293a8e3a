"""The rack simulator behaves like a rack: power feeds, transitions, firmware jobs, faults,
and state that outlives the process (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from nico.config import Settings
from nico.domain import ComponentType, PowerState
from nico.hardware.interface import (
    BringUpState,
    Capability,
    FirmwareJobState,
    HardwareError,
    TrayRef,
)
from nico.hardware.simulator import SimulatorBackend
from nico.services import Services, build_services
from nico.store.db import Database
from nico.store.simulator import FaultKind
from tests.engine.support import SimRack, add_fault, fault_remaining, make_rack, sim_state


@dataclass
class Rig:
    services: Services
    rack: SimRack
    settings: Settings

    def backend(self, latency: float = 0.0, firmware: float = 0.0) -> SimulatorBackend:
        settings = self.settings.model_copy(
            update={"sim_latency": latency, "sim_firmware_duration": firmware}
        )
        return SimulatorBackend(settings, self.services.db)

    def ref(self, kind: str, index: int = 0) -> TrayRef:
        tray = self.rack.of(kind)[index]
        return TrayRef(
            id=tray.id,
            rack_id=str(self.rack.rack_id),
            site_id=str(self.rack.site_id),
            type=ComponentType.parse(kind),
            name=tray.name,
            backend="simulator",
        )


@pytest.fixture
async def rig(any_database: Database, settings: Settings) -> Rig:
    services = build_services(settings, create_keys=True)
    services.db = any_database
    rack = await make_rack(services, compute=2, switches=1, shelves=2, firmware="2.3.1")
    return Rig(services, rack, settings)


async def test_a_tray_starts_off_with_its_inventory_firmware(rig: Rig) -> None:
    sim = rig.backend()
    shelf = rig.ref("PowerShelf")
    assert await sim.power_status(shelf) is PowerState.OFF
    assert await sim.firmware_version(shelf) == "2.3.1"


async def test_power_takes_the_configured_latency_and_shows_the_transition(rig: Rig) -> None:
    sim = rig.backend(latency=0.2)
    shelf = rig.ref("PowerShelf")
    started = time.monotonic()
    await sim.power_control(shelf, "power_on", operation_key="k1")
    assert time.monotonic() - started >= 0.2
    assert await sim.power_status(shelf) in (PowerState.POWERING_ON, PowerState.ON)
    await asyncio.sleep(0.25)
    assert await sim.power_status(shelf) is PowerState.ON


async def test_compute_bmc_answers_only_while_a_power_shelf_is_on(rig: Rig) -> None:
    sim = rig.backend()
    compute = rig.ref("Compute")
    assert not await sim.reachable(compute)
    assert await sim.power_status(compute) is PowerState.OFF  # unfed: certainly off
    with pytest.raises(HardwareError, match="no PowerShelf of the rack is on") as raised:
        await sim.power_control(compute, "power_on", operation_key="c1")
    assert raised.value.retryable
    await sim.power_control(rig.ref("PowerShelf", 1), "power_on", operation_key="s1")
    assert await sim.reachable(compute)
    await sim.power_control(compute, "power_on", operation_key="c2")
    assert await sim.power_status(compute) is PowerState.ON
    await sim.power_control(rig.ref("PowerShelf", 1), "power_off", operation_key="s2")
    assert await sim.power_status(compute) is PowerState.OFF
    assert not await sim.reachable(compute)


async def test_powering_off_an_unfed_tray_is_a_no_op(rig: Rig) -> None:
    sim = rig.backend()
    compute = rig.ref("Compute")
    for code in ("power_off", "force_power_off"):
        await sim.power_control(compute, code, operation_key=f"off-{code}")
    assert await sim.power_status(compute) is PowerState.OFF
    with pytest.raises(HardwareError, match="no PowerShelf of the rack is on"):
        await sim.power_control(compute, "restart", operation_key="cycle")


async def test_a_retried_command_with_the_same_key_acts_once(rig: Rig) -> None:
    sim = rig.backend()
    shelf = rig.ref("PowerShelf")
    await sim.power_control(shelf, "power_on", operation_key="task/1/shelf/main")
    await sim.power_control(shelf, "power_on", operation_key="task/1/shelf/main")
    state = await sim_state(rig.services, shelf.id)
    assert state is not None and state.power_ops == 1
    await sim.power_control(shelf, "force_restart", operation_key="task/2/shelf/main")
    state = await sim_state(rig.services, shelf.id)
    assert state is not None and state.power_ops == 2
    assert await sim.power_status(shelf) is PowerState.ON


async def test_firmware_update_reports_progress_then_installs_the_version(rig: Rig) -> None:
    sim = rig.backend(firmware=0.4)
    shelf = rig.ref("PowerShelf")
    job = await sim.firmware_start(shelf, "3.0.0", ("bmc",), operation_key="fw1")
    assert await sim.firmware_start(shelf, "3.0.0", ("bmc",), operation_key="fw1") == job
    running = await sim.firmware_status(shelf, job)
    assert running.state is FirmwareJobState.RUNNING
    assert 0 <= running.percent < 100
    assert await sim.firmware_version(shelf) == "2.3.1"
    await asyncio.sleep(0.45)
    done = await sim.firmware_status(shelf, job)
    assert (done.state, done.percent) == (FirmwareJobState.COMPLETED, 100)
    assert await sim.firmware_version(shelf) == "3.0.0"
    with pytest.raises(HardwareError, match="no firmware job") as raised:
        await sim.firmware_status(shelf, "sim-unknown")
    assert not raised.value.retryable


async def test_unreachable_fault_fails_every_call_to_the_tray_only(rig: Rig) -> None:
    sim = rig.backend()
    target, other = rig.ref("PowerShelf", 0), rig.ref("PowerShelf", 1)
    await add_fault(
        rig.services, rig.rack, FaultKind.UNREACHABLE.value, tray=rig.rack.of("PowerShelf")[0]
    )
    with pytest.raises(HardwareError, match="BMC unreachable"):
        await sim.power_status(target)
    with pytest.raises(HardwareError, match="BMC unreachable"):
        await sim.power_control(target, "power_on", operation_key="x")
    assert not await sim.reachable(target)
    assert await sim.reachable(other)


async def test_power_fail_fault_fires_the_given_number_of_times(rig: Rig) -> None:
    sim = rig.backend()
    shelf = rig.ref("PowerShelf")
    fault = await add_fault(
        rig.services, rig.rack, FaultKind.POWER_FAIL.value, component_type="powershelf", remaining=1
    )
    with pytest.raises(HardwareError, match="rejected power_on"):
        await sim.power_control(shelf, "power_on", operation_key="a")
    await sim.power_control(shelf, "power_on", operation_key="a")
    assert await fault_remaining(rig.services, fault) == 0
    assert await sim.power_status(shelf) is PowerState.ON


async def test_power_stuck_fault_accepts_the_command_but_nothing_happens(rig: Rig) -> None:
    sim = rig.backend()
    shelf = rig.ref("PowerShelf")
    await add_fault(rig.services, rig.rack, FaultKind.POWER_STUCK.value)
    await sim.power_control(shelf, "power_on", operation_key="a")
    assert await sim.power_status(shelf) is PowerState.OFF
    state = await sim_state(rig.services, shelf.id)
    assert state is not None and state.power_ops == 1


async def test_firmware_faults_fail_or_hang_the_update(rig: Rig) -> None:
    sim = rig.backend()
    first, second = rig.ref("PowerShelf", 0), rig.ref("PowerShelf", 1)
    await add_fault(rig.services, rig.rack, FaultKind.FIRMWARE_FAIL.value, remaining=1)
    failed = await sim.firmware_start(first, "3.0.0", (), operation_key="f1")
    status = await sim.firmware_status(first, failed)
    assert status.state is FirmwareJobState.FAILED
    assert await sim.firmware_version(first) == "2.3.1"
    await add_fault(rig.services, rig.rack, FaultKind.FIRMWARE_HANG.value, remaining=1)
    hung = await sim.firmware_start(second, "3.0.0", (), operation_key="f2")
    status = await sim.firmware_status(second, hung)
    assert (status.state, status.percent) == (FirmwareJobState.RUNNING, 50)


async def test_slow_fault_adds_to_every_call(rig: Rig) -> None:
    sim = rig.backend()
    await add_fault(rig.services, rig.rack, FaultKind.SLOW.value, slow_seconds=0.3)
    started = time.monotonic()
    await sim.power_status(rig.ref("PowerShelf"))
    assert time.monotonic() - started >= 0.3


async def test_bring_up_needs_the_gate_open_and_power_on(rig: Rig) -> None:
    sim = rig.backend()
    compute = rig.ref("Compute")
    assert await sim.bring_up_status(compute) is BringUpState.NOT_DISCOVERED
    await sim.power_control(rig.ref("PowerShelf"), "power_on", operation_key="s")
    assert await sim.bring_up_status(compute) is BringUpState.WAITING_FOR_INGESTION
    await sim.bring_up_control(compute)
    assert await sim.bring_up_status(compute) is BringUpState.WAITING_FOR_INGESTION
    await sim.power_control(compute, "power_on", operation_key="c")
    assert await sim.bring_up_status(compute) is BringUpState.INGESTED
    await sim.inject_expectation(compute)
    state = await sim_state(rig.services, compute.id)
    assert state is not None and state.expectation_injected


async def test_state_survives_a_restarted_backend(rig: Rig) -> None:
    shelf = rig.ref("PowerShelf")
    await rig.backend(latency=0.1).power_control(shelf, "power_on", operation_key="k")
    await asyncio.sleep(0.15)
    fresh = rig.backend()  # a new worker process: nothing in memory
    assert await fresh.power_status(shelf) is PowerState.ON


async def test_all_capabilities_for_operable_types_only(rig: Rig) -> None:
    sim = rig.backend()
    assert sim.capabilities(ComponentType.POWERSHELF) == frozenset(Capability)
    # Only a shelf cuts AC.
    assert sim.capabilities(ComponentType.NVLSWITCH) == frozenset(Capability) - {
        Capability.AC_POWER_CYCLE
    }
    assert sim.capabilities(ComponentType.TORSWITCH) == frozenset()


async def test_an_ac_power_cycle_takes_every_fed_tray_through_off_and_back(rig: Rig) -> None:
    sim = rig.backend(latency=0.2)
    for kind, count in (("PowerShelf", 2), ("NVLSwitch", 1), ("Compute", 2)):
        for i in range(count):
            await rig.backend().power_control(
                rig.ref(kind, i), "power_on", operation_key=f"{kind}{i}"
            )
    shelf, compute = rig.ref("PowerShelf"), rig.ref("Compute")
    before = await sim.reset_marker(compute)

    await sim.power_control(shelf, "ac_power_cycle", operation_key="ac")
    state = await sim_state(rig.services, compute.id)
    assert state is not None and state.power_on is False and state.power_target is True

    await asyncio.sleep(0.25)
    # Every fed tray is back On, its own reset marker moved; the other shelf kept its
    # power and its marker.
    for kind, i in (("Compute", 0), ("Compute", 1), ("NVLSwitch", 0), ("PowerShelf", 0)):
        assert await sim.power_status(rig.ref(kind, i)) is PowerState.ON
    assert await sim.reset_marker(compute) == str(int(before or 0) + 1)
    assert await sim.reset_marker(rig.ref("PowerShelf", 1)) == "0"


async def test_an_ac_power_cycle_of_a_compute_tray_is_refused(rig: Rig) -> None:
    sim = rig.backend()
    with pytest.raises(HardwareError, match="ac_power_cycle is carried out by a PowerShelf"):
        await sim.power_control(rig.ref("Compute"), "ac_power_cycle", operation_key="x")
    state = await sim_state(rig.services, rig.ref("Compute").id)
    assert state is None or state.power_ops == 0
