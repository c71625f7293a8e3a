"""Input spellings operators and upstream rule files use are understood."""

import pytest

from nico.domain import ComponentType, OperationType, TaskStatus, power_code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("NVSwitch", ComponentType.NVLSWITCH),
        ("nvswitch", ComponentType.NVLSWITCH),
        ("NVLSwitch", ComponentType.NVLSWITCH),
        ("compute", ComponentType.COMPUTE),
        ("power_shelf", ComponentType.POWERSHELF),
        ("PowerShelf", ComponentType.POWERSHELF),
        ("ToRSwitch", ComponentType.TORSWITCH),
        ("cdu", ComponentType.CDU),
    ],
)
def test_component_type_aliases(raw: str, expected: ComponentType) -> None:
    assert ComponentType.parse(raw) is expected


def test_unknown_component_type_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown component type 'gpu'.*Compute NVLSwitch"):
        ComponentType.parse("gpu")


def test_operation_type_accepts_upstream_snake_case() -> None:
    assert OperationType.parse("power_control") is OperationType.POWER_CONTROL
    assert OperationType.parse("FirmwareControl") is OperationType.FIRMWARE_CONTROL
    assert OperationType.parse("bring_up") is OperationType.BRING_UP
    with pytest.raises(ValueError, match="PowerControl FirmwareControl BringUp"):
        OperationType.parse("reboot")


def test_power_state_and_code_spellings() -> None:
    assert power_code("forcecycle") == "force_restart"
    assert power_code("on") == "power_on"
    assert power_code("warm_reset") == "warm_reset"
    with pytest.raises(ValueError):
        power_code("reboot")


def test_active_statuses_are_the_seed_000_set() -> None:
    assert {s for s in TaskStatus if s.active} == {
        TaskStatus.PENDING,
        TaskStatus.WAITING,
        TaskStatus.RUNNING,
    }
