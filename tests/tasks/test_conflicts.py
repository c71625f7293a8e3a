"""The conflict table of SPEC §6, row by row, in both directions."""

import uuid

import pytest

from nico.domain import OperationType
from nico.tasks.conflicts import TaskFootprint, conflicts, first_conflict

POWER, FIRMWARE, BRING_UP = (
    OperationType.POWER_CONTROL,
    OperationType.FIRMWARE_CONTROL,
    OperationType.BRING_UP,
)


def task(kind: OperationType, **trays: list[str]) -> TaskFootprint:
    return TaskFootprint.of(kind, trays)


CASES = [
    # (a, b, conflict?, why)
    (task(BRING_UP, Compute=["c1"]), task(POWER, Compute=["c9"]), True, "bring-up excludes all"),
    (task(BRING_UP, Compute=["c1"]), task(BRING_UP, Compute=["c9"]), True, "bring-up twice"),
    (task(BRING_UP), task(FIRMWARE, NVLSwitch=["s1"]), True, "bring-up vs firmware"),
    (
        task(POWER, PowerShelf=["p1"]),
        task(POWER, Compute=["c1"]),
        True,
        "shelf power excludes power",
    ),
    (
        task(POWER, PowerShelf=["p1"]),
        task(FIRMWARE, NVLSwitch=["s1"]),
        True,
        "shelf power excludes firmware",
    ),
    (
        task(POWER, PowerShelf=["p1"]),
        task(POWER, PowerShelf=["p2"]),
        True,
        "two shelf powers on disjoint shelves",
    ),
    (task(POWER, Compute=["c1"]), task(POWER, Compute=["c1", "c2"]), True, "shared compute"),
    (task(POWER, Compute=["c1"]), task(POWER, Compute=["c2"]), False, "disjoint compute"),
    (task(POWER, Compute=["c1"]), task(POWER, NVLSwitch=["s1"]), False, "compute vs switch"),
    (task(POWER, Compute=["c1"]), task(FIRMWARE, Compute=["c1"]), True, "power vs fw same tray"),
    (task(POWER, Compute=["c1"]), task(FIRMWARE, Compute=["c2"]), False, "power vs fw disjoint"),
    (task(FIRMWARE, NVLSwitch=["s1"]), task(FIRMWARE, NVLSwitch=["s1"]), True, "fw same tray"),
    (task(FIRMWARE, NVLSwitch=["s1"]), task(FIRMWARE, NVLSwitch=["s2"]), False, "fw disjoint"),
    (
        task(FIRMWARE, PowerShelf=["p1"]),
        task(POWER, Compute=["c1"]),
        False,
        "shelf firmware does not feed trays",
    ),
    (
        task(FIRMWARE, PowerShelf=["p1"]),
        task(FIRMWARE, PowerShelf=["p2"]),
        False,
        "shelf firmware disjoint",
    ),
]


@pytest.mark.parametrize(("a", "b", "expected", "why"), CASES, ids=[c[3] for c in CASES])
def test_conflict_table_is_symmetric(
    a: TaskFootprint, b: TaskFootprint, expected: bool, why: str
) -> None:
    assert conflicts(a, b) is expected, why
    assert conflicts(b, a) is expected, why


def test_footprint_accepts_upstream_type_aliases() -> None:
    a = TaskFootprint.of("power_control", {"NVSwitch": ["s1"]})
    b = TaskFootprint.of("FirmwareControl", {"nvlswitch": ["s1"]})
    assert conflicts(a, b)


def test_first_conflict_names_the_blocking_task() -> None:
    blocker_id = uuid.uuid4()
    active = [
        TaskFootprint.of(POWER, {"Compute": ["c2"]}, uuid.uuid4()),
        TaskFootprint.of(FIRMWARE, {"Compute": ["c1"]}, blocker_id),
    ]
    hit = first_conflict(task(POWER, Compute=["c1"]), active)
    assert hit is not None and hit.task_id == blocker_id
    assert first_conflict(task(POWER, Compute=["c3"]), active) is None
