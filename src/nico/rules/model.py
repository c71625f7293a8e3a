"""The engine's view of an operation rule: frozen dataclasses for planning and workflows.

The rule model (`nico.rules.schema`, pydantic) validates a definition and is the
published schema; this view is built from its normalized wire JSON (`from_wire`) and
renders back to the same JSON. It stays plain dataclasses because workflow code and
recorded workflow histories depend on it, and it is pure, so workflows can use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nico.domain import ComponentType
from nico.rules.durations import GoDuration, parse_duration

RULE_DEFINITION_VERSION = "v1"

# Ceilings no real datacenter rule comes near. They keep every budget derived from a rule
# small enough to compute at once and within what Temporal accepts as a duration.
MAX_ATTEMPTS = 100
MAX_STAGE = 1000
MAX_PARALLEL = 10_000
MAX_DURATION = GoDuration("168h", 7 * 24 * 3600.0)


class ActionName(StrEnum):
    """The 11 executor-agnostic actions of seed 004's `ActionConfigName`."""

    SLEEP = "Sleep"
    POWER_CONTROL = "PowerControl"
    VERIFY_POWER_STATUS = "VerifyPowerStatus"
    VERIFY_REACHABILITY = "VerifyReachability"
    GET_POWER_STATUS = "GetPowerStatus"
    FIRMWARE_CONTROL = "FirmwareControl"
    VERIFY_FIRMWARE_VERSION = "VerifyFirmwareVersion"
    VERIFY_FIRMWARE_CONSISTENCY = "VerifyFirmwareConsistency"
    BRING_UP_CONTROL = "BringUpControl"
    WAIT_BRING_UP = "WaitBringUp"
    INJECT_EXPECTATION = "InjectExpectation"


def _duration(value: object) -> GoDuration | None:
    if value is None or value == "":
        return None
    return parse_duration(value)


def _duration_text(value: GoDuration | None) -> str | None:
    return None if value is None else value.text


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry of each action call in a step (Temporal activity retry)."""

    max_attempts: int
    initial_interval: GoDuration
    backoff_coefficient: float
    max_interval: GoDuration | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RetryPolicy:
        initial = parse_duration(data["initialInterval"])
        return cls(
            max_attempts=int(data["maxAttempts"]),
            initial_interval=initial,
            backoff_coefficient=float(data["backoffCoefficient"]),
            max_interval=_duration(data.get("maxInterval")),
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "maxAttempts": self.max_attempts,
            "initialInterval": self.initial_interval.text,
            "backoffCoefficient": _number(self.backoff_coefficient),
        }
        if self.max_interval is not None:
            out["maxInterval"] = self.max_interval.text
        return out

    def worst_case_backoff_seconds(self) -> float:
        """Sum of the waits between attempts, for timeout budgets and plans.

        Closed form, so an attempt count costs no loop: the waits grow geometrically
        from `initialInterval` until they reach the cap (`maxInterval`, else Temporal's
        default of 100 x `initialInterval`), then stay at the cap. A sum beyond float
        range (only an unchecked stored rule) is infinite.
        """
        waits = max(self.max_attempts - 1, 0)
        first = self.initial_interval.seconds
        cap = self.max_interval.seconds if self.max_interval else first * 100
        growth = self.backoff_coefficient
        if waits == 0 or first <= 0:
            return 0.0
        try:
            if first >= cap or not growth > 1:
                return waits * min(first, cap)
            # The first `growing` waits, first * growth**k, stay below the cap: k is below
            # log(cap / first) / log(growth), and at least the first wait is (first < cap).
            growing = waits
            if math.isfinite(cap):
                growing = min(waits, max(1, math.ceil(math.log(cap / first) / math.log(growth))))
            if math.isfinite(growth):
                below_cap = first * (growth**growing - 1) / (growth - 1)
            else:
                below_cap = first if growing == 1 else math.inf
            capped = waits - growing
            return below_cap + (capped * cap if capped else 0.0)
        except OverflowError:
            return math.inf


def _number(value: float) -> int | float:
    """Render 2.0 as 2 so seed 004's `"backoffCoefficient": 2` reads back unchanged."""
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True, slots=True)
class ActionConfig:
    """One action of a step: its name, optional timeout/poll interval and parameters."""

    name: ActionName
    timeout: GoDuration | None = None
    poll_interval: GoDuration | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ActionConfig:
        return cls(
            name=ActionName(data["name"]),
            timeout=_duration(data.get("timeout")),
            poll_interval=_duration(data.get("pollInterval")),
            parameters=dict(data.get("parameters") or {}),
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name.value}
        if self.timeout is not None:
            out["timeout"] = self.timeout.text
        if self.poll_interval is not None:
            out["pollInterval"] = self.poll_interval.text
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out


@dataclass(frozen=True, slots=True)
class SequenceStep:
    """One component type's work within a stage: pre -> main -> post per tray."""

    component_type: ComponentType
    stage: int
    main_operation: ActionConfig
    max_parallel: int = 0
    timeout: GoDuration | None = None
    retry: RetryPolicy | None = None
    pre_operation: tuple[ActionConfig, ...] = ()
    post_operation: tuple[ActionConfig, ...] = ()
    delay_after: GoDuration | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SequenceStep:
        retry = data.get("retry")
        return cls(
            component_type=ComponentType.parse(data["componentType"]),
            stage=int(data["stage"]),
            main_operation=ActionConfig.from_wire(data["mainOperation"]),
            max_parallel=int(data.get("maxParallel") or 0),
            timeout=_duration(data.get("timeout")),
            retry=RetryPolicy.from_wire(retry) if retry else None,
            pre_operation=tuple(ActionConfig.from_wire(a) for a in data.get("preOperation") or ()),
            post_operation=tuple(
                ActionConfig.from_wire(a) for a in data.get("postOperation") or ()
            ),
            delay_after=_duration(data.get("delayAfter")),
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "componentType": self.component_type.value,
            "stage": self.stage,
            "maxParallel": self.max_parallel,
        }
        if self.timeout is not None:
            out["timeout"] = self.timeout.text
        if self.retry is not None:
            out["retry"] = self.retry.to_wire()
        if self.pre_operation:
            out["preOperation"] = [a.to_wire() for a in self.pre_operation]
        out["mainOperation"] = self.main_operation.to_wire()
        if self.post_operation:
            out["postOperation"] = [a.to_wire() for a in self.post_operation]
        if self.delay_after is not None:
            out["delayAfter"] = self.delay_after.text
        return out

    def actions(self) -> Iterator[ActionConfig]:
        """Pre, main and post actions in execution order."""
        yield from self.pre_operation
        yield self.main_operation
        yield from self.post_operation


@dataclass(frozen=True, slots=True)
class Stage:
    """Steps sharing a stage number, with each step's index in the rule's step list."""

    number: int
    steps: tuple[tuple[int, SequenceStep], ...]


@dataclass(frozen=True, slots=True)
class RuleDefinition:
    """The executable schedule of an operation rule."""

    version: str = RULE_DEFINITION_VERSION
    steps: tuple[SequenceStep, ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RuleDefinition:
        return cls(
            version=str(data.get("version") or RULE_DEFINITION_VERSION),
            steps=tuple(SequenceStep.from_wire(s) for s in data.get("steps") or ()),
        )

    def to_wire(self) -> dict[str, Any]:
        return {"version": self.version, "steps": [s.to_wire() for s in self.steps]}

    def stages(self) -> tuple[Stage, ...]:
        """Stages in ascending order; steps keep the order they have in the rule."""
        numbers = sorted({s.stage for s in self.steps})
        return tuple(
            Stage(
                number=n,
                steps=tuple((i, s) for i, s in enumerate(self.steps) if s.stage == n),
            )
            for n in numbers
        )
