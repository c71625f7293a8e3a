"""Shared domain vocabulary: component types, operation types and codes, statuses.

Wire spellings follow the seeds (`NVLSwitch`, `PowerControl`, `Succeeded`); input is
accepted case-insensitively with the aliases upstream clients and rule files use.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ComponentType(StrEnum):
    """A tray's component class. The first three are operable; the rest are inventory-only."""

    COMPUTE = "Compute"
    NVLSWITCH = "NVLSwitch"
    POWERSHELF = "PowerShelf"
    TORSWITCH = "TorSwitch"
    UMS = "UMS"
    CDU = "CDU"

    @classmethod
    def parse(cls, value: object) -> ComponentType:
        """Accept any casing and the upstream aliases (`NVSwitch`, `ToRSwitch`, `power_shelf`)."""
        if isinstance(value, ComponentType):
            return value
        if not isinstance(value, str):
            raise ValueError(f"must be one of {component_type_names()}")
        key = value.strip().lower().replace("_", "").replace("-", "")
        found = _COMPONENT_ALIASES.get(key)
        if found is None:
            raise ValueError(
                f"unknown component type {value!r}: must be one of {component_type_names()}"
            )
        return found

    @property
    def operable(self) -> bool:
        """Whether operations (power, firmware, bring-up) can target this type."""
        return self in OPERABLE_COMPONENT_TYPES


_COMPONENT_ALIASES: dict[str, ComponentType] = {
    "compute": ComponentType.COMPUTE,
    "nvlswitch": ComponentType.NVLSWITCH,
    "nvswitch": ComponentType.NVLSWITCH,
    "switch": ComponentType.NVLSWITCH,
    "powershelf": ComponentType.POWERSHELF,
    "torswitch": ComponentType.TORSWITCH,
    "tor": ComponentType.TORSWITCH,
    "ums": ComponentType.UMS,
    "cdu": ComponentType.CDU,
}

OPERABLE_COMPONENT_TYPES: tuple[ComponentType, ...] = (
    ComponentType.COMPUTE,
    ComponentType.NVLSWITCH,
    ComponentType.POWERSHELF,
)


def component_type_names() -> str:
    """The wire names as `[Compute NVLSwitch ...]`, the way error messages list them."""
    return "[" + " ".join(t.value for t in ComponentType) + "]"


class OperationType(StrEnum):
    """The kind of operation a rule or task belongs to."""

    POWER_CONTROL = "PowerControl"
    FIRMWARE_CONTROL = "FirmwareControl"
    BRING_UP = "BringUp"

    @classmethod
    def parse(cls, value: object) -> OperationType:
        """Accept `PowerControl` and upstream's `power_control` spellings."""
        if isinstance(value, OperationType):
            return value
        if isinstance(value, str):
            key = value.strip().lower().replace("_", "").replace("-", "")
            for member in cls:
                if member.value.lower() == key:
                    return member
        raise ValueError(f"must be one of [{' '.join(t.value for t in cls)}]")

    @property
    def codes(self) -> tuple[str, ...]:
        """Operation codes valid for this type."""
        return OPERATION_CODES[self]


POWER_CODES: tuple[str, ...] = (
    "power_on",
    "force_power_on",
    "power_off",
    "force_power_off",
    "restart",
    "force_restart",
    "warm_reset",
    "cold_reset",
    "ac_power_cycle",
)
# The power code an AC power cycle runs: carried out by power shelves (docs/rules.md).
AC_POWER_CYCLE = "ac_power_cycle"
FIRMWARE_CODES: tuple[str, ...] = ("upgrade", "downgrade", "rollback")
BRING_UP_CODES: tuple[str, ...] = ("bring_up", "ingest")

OPERATION_CODES: dict[OperationType, tuple[str, ...]] = {
    OperationType.POWER_CONTROL: POWER_CODES,
    OperationType.FIRMWARE_CONTROL: FIRMWARE_CODES,
    OperationType.BRING_UP: BRING_UP_CODES,
}

# The REST power `state` values, as upstream spells them now (PascalCase), and the
# operation code each one runs. Input is matched case-insensitively, so upstream's older
# lowercase spellings (`on`, `forcecycle`) stay accepted; tasks record this spelling.
POWER_STATE_CODES: dict[str, str] = {
    "On": "power_on",
    "Off": "power_off",
    "Cycle": "restart",
    "ForceOff": "force_power_off",
    "ForceCycle": "force_restart",
    "ACPowerCycle": "ac_power_cycle",
}
POWER_STATES: tuple[str, ...] = tuple(POWER_STATE_CODES)
# The same, keyed by lowercase: what a rule's PowerControl `operation` also accepts.
POWER_STATE_TO_CODE: dict[str, str] = {k.lower(): v for k, v in POWER_STATE_CODES.items()}
# How a default task description says each state (upstream: "API force power cycle Tray").
POWER_STATE_WORDS: dict[str, str] = {
    "On": "power on",
    "Off": "power off",
    "Cycle": "power cycle",
    "ForceOff": "force power off",
    "ForceCycle": "force power cycle",
    "ACPowerCycle": "AC power cycle",
}
_POWER_STATE_BY_LOWER = {k.lower(): k for k in POWER_STATES}


def power_state(value: str) -> str:
    """The canonical spelling of a REST power state in any casing (`forcecycle` ->
    `ForceCycle`); ValueError listing the states otherwise."""
    found = _POWER_STATE_BY_LOWER.get(value.strip().lower())
    if found is None:
        raise ValueError(f"must be one of [{' '.join(POWER_STATES)}]")
    return found


def power_code(value: str) -> str:
    """Map a power code or an API power state (`on`, `ForceCycle`) to a power code."""
    key = value.strip().lower()
    if key in POWER_CODES:
        return key
    if key in POWER_STATE_TO_CODE:
        return POWER_STATE_TO_CODE[key]
    raise ValueError(
        f"must be one of [{' '.join(POWER_CODES)}] or [{' '.join(POWER_STATE_TO_CODE)}]"
    )


class PowerState(StrEnum):
    """Observed power state of a tray (Redfish vocabulary, as operators know it)."""

    ON = "On"
    OFF = "Off"
    POWERING_ON = "PoweringOn"
    POWERING_OFF = "PoweringOff"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class FirmwareComponent:
    """One entry of a tray's firmware inventory as its BMC lists it (BMC, BIOS/UEFI,
    CPLD, NIC, ...): the name operators read, the running version, the BMC's own id."""

    name: str
    version: str
    id: str | None = None

    @property
    def key(self) -> str:
        """What identifies the component between two reads (names may repeat)."""
        return self.id or self.name

    def to_json(self) -> dict[str, str]:
        out = {"name": self.name, "version": self.version}
        if self.id is not None:
            out["id"] = self.id
        return out

    @classmethod
    def from_json(cls, data: dict[str, str]) -> FirmwareComponent:
        return cls(str(data["name"]), str(data["version"]), data.get("id"))


class TaskStatus(StrEnum):
    """Task lifecycle status, as seed 000 spells it."""

    UNKNOWN = "Unknown"
    PENDING = "Pending"
    WAITING = "Waiting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TERMINATED = "Terminated"

    @property
    def finished(self) -> bool:
        return self in FINISHED_TASK_STATUSES

    @property
    def active(self) -> bool:
        """Non-terminal, as `activeOnly=true` means it."""
        return self in (TaskStatus.PENDING, TaskStatus.WAITING, TaskStatus.RUNNING)


FINISHED_TASK_STATUSES: frozenset[TaskStatus] = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.TERMINATED}
)

# Which status may follow which. Anything else is refused by compare-and-set.
ALLOWED_TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.WAITING: frozenset({TaskStatus.PENDING, TaskStatus.TERMINATED}),
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.TERMINATED}),
    TaskStatus.RUNNING: frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.TERMINATED}),
    TaskStatus.SUCCEEDED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.TERMINATED: frozenset(),
    TaskStatus.UNKNOWN: frozenset(),
}


class ReportStatus(StrEnum):
    """Stage/step status inside a TaskReportV1."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
