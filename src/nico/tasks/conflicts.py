"""The conflict table (SPEC §6): which two tasks on one rack may not be active together.

Pure: a task is reduced to its operation type and the trays it targets per component
type. Reading of the table (symmetric, checked in both directions):

- bring-up (any code, `ingest` too) excludes every other task on the rack;
- power that touches a PowerShelf excludes all power and firmware on the rack, because
  shelves feed every other tray;
- otherwise power and firmware conflict exactly when they share a tray.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from nico.domain import ComponentType, OperationType


class ConflictStrategy(StrEnum):
    """What to do when the rack is busy with a conflicting task."""

    REJECT = "reject"
    QUEUE = "queue"


@dataclass(frozen=True)
class TaskFootprint:
    """What the conflict table needs to know about one task."""

    operation_type: OperationType
    trays: Mapping[ComponentType, frozenset[str]]
    task_id: uuid.UUID | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls,
        operation_type: str | OperationType,
        targets: Mapping[str, Iterable[object]],
        task_id: uuid.UUID | None = None,
    ) -> TaskFootprint:
        """Build from a task's stored `targets` map (`{"Compute": [tray ids], ...}`)."""
        trays = {
            ComponentType.parse(kind): frozenset(str(t) for t in ids)
            for kind, ids in targets.items()
        }
        return cls(OperationType.parse(operation_type), trays, task_id)

    def touches(self, kind: ComponentType) -> bool:
        return bool(self.trays.get(kind))

    @property
    def all_trays(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for ids in self.trays.values():
            out |= ids
        return out


_POWER_OR_FIRMWARE = (OperationType.POWER_CONTROL, OperationType.FIRMWARE_CONTROL)


def _excludes_rack(task: TaskFootprint, other: TaskFootprint) -> bool:
    if task.operation_type is OperationType.BRING_UP:
        return True
    return (
        task.operation_type is OperationType.POWER_CONTROL
        and task.touches(ComponentType.POWERSHELF)
        and other.operation_type in _POWER_OR_FIRMWARE
    )


def conflicts(a: TaskFootprint, b: TaskFootprint) -> bool:
    """Whether `a` and `b` may not be Pending/Running on the same rack at the same time."""
    if _excludes_rack(a, b) or _excludes_rack(b, a):
        return True
    if a.operation_type in _POWER_OR_FIRMWARE and b.operation_type in _POWER_OR_FIRMWARE:
        return not a.all_trays.isdisjoint(b.all_trays)
    return False


def first_conflict(
    candidate: TaskFootprint, active: Iterable[TaskFootprint]
) -> TaskFootprint | None:
    """The first active task that `candidate` conflicts with, or None."""
    for other in active:
        if conflicts(candidate, other):
            return other
    return None
