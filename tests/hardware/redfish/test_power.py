"""Power through the Redfish backend, observed on the sushy-tools emulator."""

from __future__ import annotations

import pytest

from nico.domain import ComponentType, PowerState
from nico.hardware.interface import Capability, UnsupportedOperation
from nico.hardware.redfish.backend import RedfishBackend
from tests.hardware.redfish.conftest import StartEmulator, key, tray, wait_for_power
from tests.support.sushy import FakeChassis, FakeSystem

pytestmark = pytest.mark.redfish

# code, the state the system starts in, the ResetTypes the BMC receives, the power
# states the emulator goes through, the state the tray settles in.
POWER_CASES = [
    ("power_on", "Off", ["On"], ["On"], PowerState.ON),
    ("force_power_on", "Off", ["ForceOn"], ["On"], PowerState.ON),
    ("power_off", "On", ["GracefulShutdown"], ["Off"], PowerState.OFF),
    ("force_power_off", "On", ["ForceOff"], ["Off"], PowerState.OFF),
    ("restart", "On", ["GracefulRestart"], ["Off", "On"], PowerState.ON),
    ("force_restart", "On", ["ForceRestart"], ["Off", "On"], PowerState.ON),
    ("warm_reset", "On", ["GracefulRestart"], ["Off", "On"], PowerState.ON),
    # The emulator offers no PowerCycle: the documented fallback runs instead.
    ("cold_reset", "On", ["ForceOff", "On"], ["Off", "On"], PowerState.ON),
]


@pytest.mark.parametrize(("code", "start", "sent", "states", "final"), POWER_CASES)
async def test_every_power_code_changes_the_emulated_system(
    emulator_factory: StartEmulator,
    backend: RedfishBackend,
    code: str,
    start: str,
    sent: list[str],
    states: list[str],
    final: PowerState,
) -> None:
    node = FakeSystem("node1", power_state=start)
    emulator = emulator_factory(systems=(node,), power_delay=1)
    target = tray(emulator.endpoint())

    await backend.power_control(target, code, operation_key=key())
    await wait_for_power(backend, target, final)

    assert emulator.resets() == sent
    assert emulator.power_history("node1") == states
    assert emulator.power_state(node) == final.value


async def test_power_on_a_tray_already_on_sends_nothing(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1", power_state="On"),))
    target = tray(emulator.endpoint())

    await backend.power_control(target, "power_on", operation_key=key())

    assert emulator.resets() == []
    assert await backend.power_status(target) == PowerState.ON


async def test_a_code_the_bmc_cannot_do_is_refused_before_anything_is_sent(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    # No GracefulShutdown, and a graceful power off never escalates to ForceOff.
    emulator = emulator_factory(
        systems=(FakeSystem("node1", power_state="On"),), reset_types=["On", "ForceOff"]
    )
    target = tray(emulator.endpoint())

    with pytest.raises(UnsupportedOperation) as refused:
        await backend.power_control(target, "power_off", operation_key=key())

    assert "power_off needs ResetType [GracefulShutdown]" in str(refused.value)
    assert "only allows: ForceOff, On" in str(refused.value)
    assert refused.value.retryable is False
    assert emulator.resets() == []
    assert emulator.power_history("node1") == []


async def test_restart_without_graceful_restart_falls_back_to_shutdown_then_on(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(
        systems=(FakeSystem("node1", power_state="On"),),
        reset_types=["On", "GracefulShutdown"],
        power_delay=1,
    )
    target = tray(emulator.endpoint())

    await backend.power_control(target, "restart", operation_key=key())
    await wait_for_power(backend, target, PowerState.ON)

    assert emulator.resets() == ["GracefulShutdown", "On"]
    assert emulator.power_history("node1") == ["Off", "On"]


async def test_allowable_values_behind_an_action_info_are_honoured(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(
        systems=(FakeSystem("node1", power_state="On"),),
        reset_types=["On", "ForceOff", "PowerCycle"],
        reset_action_info=True,
    )
    target = tray(emulator.endpoint())

    await backend.power_control(target, "cold_reset", operation_key=key())
    await wait_for_power(backend, target, PowerState.ON)
    with pytest.raises(UnsupportedOperation):
        await backend.power_control(target, "restart", operation_key=key())

    assert emulator.resets() == ["PowerCycle"]


async def test_a_retried_operation_key_is_not_sent_twice(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(systems=(FakeSystem("node1", power_state="On"),))
    target = tray(emulator.endpoint())
    operation = key()

    await backend.power_control(target, "force_restart", operation_key=operation)
    await backend.power_control(target, "force_restart", operation_key=operation)
    await backend.power_control(target, "force_restart", operation_key=key())

    assert emulator.resets() == ["ForceRestart", "ForceRestart"]


async def test_resource_id_picks_the_system_among_several(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    first, second = FakeSystem("node1"), FakeSystem("node2")
    emulator = emulator_factory(systems=(first, second))
    by_name = tray(emulator.endpoint(resource_id="node2"))

    await backend.power_control(by_name, "power_on", operation_key=key())
    await wait_for_power(backend, by_name, PowerState.ON)

    assert emulator.power_state(second) == "On"
    assert emulator.power_state(first) == "Off"


@pytest.mark.parametrize("component_type", [ComponentType.POWERSHELF, ComponentType.NVLSWITCH])
async def test_power_shelves_and_switches_are_powered_through_their_chassis(
    emulator_factory: StartEmulator, backend: RedfishBackend, component_type: ComponentType
) -> None:
    emulator = emulator_factory(
        chassis=(FakeChassis("shelf1"), FakeChassis("shelf2")),
        chassis_reset_types=["On", "ForceOff", "GracefulShutdown"],
    )
    target = tray(emulator.endpoint(resource_id="shelf2"), component_type)
    assert await backend.power_status(target) == PowerState.ON

    await backend.power_control(target, "force_power_off", operation_key=key())
    assert await backend.power_status(target) == PowerState.OFF
    # No PowerCycle on this chassis: ForceOff (skipped, already Off), wait, On.
    await backend.power_control(target, "cold_reset", operation_key=key())

    assert await backend.power_status(target) == PowerState.ON
    assert emulator.power_history("shelf2") == ["Off", "On"]
    assert emulator.power_history("shelf1") == []
    assert emulator.resets() == ["ForceOff", "On"]


async def test_capabilities_are_power_and_firmware_but_never_bring_up(
    backend: RedfishBackend,
) -> None:
    compute = backend.capabilities(ComponentType.COMPUTE)
    assert {Capability.POWER_CONTROL, Capability.FIRMWARE_CONTROL} <= compute
    assert Capability.BRING_UP_CONTROL not in compute
    assert Capability.INJECT_EXPECTATION not in compute
    assert backend.capabilities(ComponentType.TORSWITCH) == frozenset()
    with pytest.raises(UnsupportedOperation):
        await backend.bring_up_control(tray(None))


async def test_an_ac_power_cycle_is_the_shelf_chassis_power_cycle(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(
        chassis=(FakeChassis("shelf1"), FakeChassis("shelf2")),
        chassis_reset_types=["On", "ForceOff", "PowerCycle"],
    )
    shelf = tray(emulator.endpoint(resource_id="shelf1"), ComponentType.POWERSHELF, "shelf-01")

    await backend.power_control(shelf, "ac_power_cycle", operation_key=key())

    assert emulator.resets() == ["PowerCycle"]
    assert emulator.power_history("shelf1") == ["Off", "On"]
    assert emulator.power_history("shelf2") == []
    assert await backend.power_status(shelf) == PowerState.ON


async def test_an_ac_power_cycle_without_power_cycle_cuts_and_restores_the_shelf(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(
        chassis=(FakeChassis("shelf1"),),
        chassis_reset_types=["On", "ForceOff", "GracefulShutdown"],
    )
    shelf = tray(emulator.endpoint(resource_id="shelf1"), ComponentType.POWERSHELF, "shelf-01")

    await backend.power_control(shelf, "ac_power_cycle", operation_key=key())

    assert emulator.resets() == ["ForceOff", "On"]
    assert emulator.power_history("shelf1") == ["Off", "On"]


async def test_an_ac_power_cycle_of_a_system_is_refused_before_anything_is_sent(
    emulator_factory: StartEmulator, backend: RedfishBackend
) -> None:
    emulator = emulator_factory(
        systems=(FakeSystem("node1", power_state="On"),),
        reset_types=["On", "ForceOff", "PowerCycle"],
    )
    node = tray(emulator.endpoint(), ComponentType.COMPUTE, "compute-01")

    with pytest.raises(UnsupportedOperation) as refused:
        await backend.power_control(node, "ac_power_cycle", operation_key=key())

    assert str(refused.value) == (
        "ac_power_cycle is carried out by a PowerShelf's Chassis; compute-01 is a Compute tray"
    )
    assert emulator.resets() == []
    assert Capability.AC_POWER_CYCLE in backend.capabilities(ComponentType.POWERSHELF)
    assert Capability.AC_POWER_CYCLE not in backend.capabilities(ComponentType.COMPUTE)
