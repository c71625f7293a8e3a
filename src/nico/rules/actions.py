"""Per-action parameter schemas: what each of the 11 actions accepts and requires.

The engine reads parameters exactly as these schemas store them: snake_case keys as seed
004 spells them (camelCase spellings are accepted on input), durations as written,
component types as wire names, choice values lower-case.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nico.domain import (
    FIRMWARE_CODES,
    POWER_CODES,
    POWER_STATE_TO_CODE,
    ComponentType,
    OperationType,
    power_code,
)
from nico.rules.durations import DurationError, GoDuration, parse_duration
from nico.rules.model import MAX_DURATION, ActionName

YAML_BOOL_HINT = ' (YAML reads an unquoted on/off as true/false: write "on" or "off")'

Normalizer = Callable[[Any], Any]


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def duration_limit_problem(parsed: GoDuration) -> str | None:
    """Why a rule cannot use this duration (over MAX_DURATION or infinite), else None."""
    if parsed.seconds <= MAX_DURATION.seconds:
        return None
    return f"must be at most {MAX_DURATION.text} ({MAX_DURATION.seconds / 86400:g} days)"


def _positive_duration(value: Any) -> str:
    try:
        parsed = parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    if parsed.seconds <= 0:
        raise ValueError("must be a positive duration")
    problem = duration_limit_problem(parsed)
    if problem is not None:
        raise ValueError(problem)
    return parsed.text


def _choice(choices: tuple[str, ...]) -> Normalizer:
    def check(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        hint = YAML_BOOL_HINT if isinstance(value, bool) else ""
        raise ValueError(f"must be one of [{' '.join(choices)}]{hint}")

    return check


def _power_operation(value: Any) -> str:
    if isinstance(value, str):
        try:
            power_code(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return value.strip().lower()
    hint = YAML_BOOL_HINT if isinstance(value, bool) else ""
    raise ValueError(
        f"must be one of [{' '.join(POWER_CODES)}] or [{' '.join(POWER_STATE_TO_CODE)}]{hint}"
    )


def _component_types(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of component types")
    out: list[str] = []
    for item in value:
        parsed = ComponentType.parse(item)
        if not parsed.operable:
            raise ValueError(f"{parsed.value} is inventory-only and has no reachability check")
        if parsed.value not in out:
            out.append(parsed.value)
    return out


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter: its stored (snake_case) key, how to check and normalize it."""

    key: str
    normalize: Normalizer
    description: str
    required: bool = False
    # Operation types whose rules must set it (elsewhere it can default from the task).
    required_in: frozenset[OperationType] = frozenset()
    required_reason: str = ""


@dataclass(frozen=True, slots=True)
class ActionSchema:
    """What one action accepts; `polls` actions need both `timeout` and `pollInterval`."""

    name: ActionName
    description: str
    params: tuple[ParamSpec, ...] = ()
    polls: bool = False
    aliases: dict[str, str] = field(default_factory=dict)

    def param(self, key: str) -> ParamSpec | None:
        for spec in self.params:
            if spec.key == key:
                return spec
        return None


_POLL_NOTE = "timeout bounds the whole poll loop; timeout and pollInterval are required"

ACTION_SCHEMAS: dict[ActionName, ActionSchema] = {
    schema.name: schema
    for schema in (
        ActionSchema(
            ActionName.SLEEP,
            "Durable timer.",
            (ParamSpec("duration", _positive_duration, "how long to wait", required=True),),
        ),
        ActionSchema(
            ActionName.POWER_CONTROL,
            "Send a power operation; without `operation` it runs the task's own power code.",
            (
                ParamSpec(
                    "operation",
                    _power_operation,
                    "power code or API power state",
                    required_in=frozenset({OperationType.FIRMWARE_CONTROL, OperationType.BRING_UP}),
                    required_reason="without it PowerControl inherits the task's power code, "
                    "which only PowerControl tasks have",
                ),
            ),
        ),
        ActionSchema(
            ActionName.VERIFY_POWER_STATUS,
            f"Poll until every tray reports the expected power state; {_POLL_NOTE}.",
            (ParamSpec("expected_status", _choice(("on", "off")), "on or off", required=True),),
            polls=True,
        ),
        ActionSchema(
            ActionName.VERIFY_REACHABILITY,
            f"Poll until the BMCs of the listed component types answer; {_POLL_NOTE}.",
            (
                ParamSpec("component_types", _component_types, "types to probe", required=True),
                ParamSpec("require_all", _bool, "every tray must answer (default true)"),
            ),
            polls=True,
        ),
        ActionSchema(ActionName.GET_POWER_STATUS, "Read and record the power state."),
        ActionSchema(
            ActionName.FIRMWARE_CONTROL,
            "Start a firmware update (version and targets come from the task) and poll it.",
            (
                ParamSpec("operation", _choice(FIRMWARE_CODES), "upgrade|downgrade|rollback"),
                ParamSpec("poll_interval", _positive_duration, "status poll interval"),
                ParamSpec("poll_timeout", _positive_duration, "bound of the status polling"),
            ),
        ),
        ActionSchema(
            ActionName.VERIFY_FIRMWARE_VERSION,
            "Check every tray reports the expected version (default: the requested one).",
            (
                ParamSpec(
                    "expected_version",
                    _string,
                    "version to expect",
                    required_in=frozenset({OperationType.POWER_CONTROL, OperationType.BRING_UP}),
                    required_reason="only FirmwareControl tasks request a firmware version "
                    "to compare against",
                ),
            ),
        ),
        ActionSchema(
            ActionName.VERIFY_FIRMWARE_CONSISTENCY,
            "Check all targeted trays of the step's type report the same version.",
        ),
        ActionSchema(ActionName.BRING_UP_CONTROL, "Open the power-on/ingestion gate."),
        ActionSchema(
            ActionName.WAIT_BRING_UP,
            f"Poll until bring-up (ingestion) completes; {_POLL_NOTE}.",
            polls=True,
        ),
        ActionSchema(ActionName.INJECT_EXPECTATION, "Register the trays as expected inventory."),
    )
}

_ACTION_BY_LOWER = {name.value.lower(): name for name in ActionName}


def action_names() -> str:
    return "[" + " ".join(name.value for name in ActionName) + "]"


def parse_action_name(value: Any) -> ActionName:
    """The canonical action name for any casing; ValueError listing the 11 otherwise."""
    if isinstance(value, str) and value.strip().lower() in _ACTION_BY_LOWER:
        return _ACTION_BY_LOWER[value.strip().lower()]
    if isinstance(value, str) and value.strip():
        raise ValueError(f"unknown action {value!r}: must be one of {action_names()}")
    raise ValueError(f"must be one of {action_names()}")


def snake(key: str) -> str:
    """`maxParallel` -> `max_parallel`: upstream's spelling of a seed 004 key."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def check_parameters(
    action: ActionName,
    raw: Mapping[str, Any],
    path: str,
    operation_type: OperationType | None,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Normalized parameters and every problem as (field path, message)."""
    schema = ACTION_SCHEMAS[action]
    errors: list[tuple[str, str]] = []
    given: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key)
        spec = schema.param(name) or schema.param(snake(name))
        if spec is None:
            known = ", ".join(p.key for p in schema.params) or "none"
            errors.append((f"{path}.{name}", f"is not a parameter of {action.value} ({known})"))
            continue
        if spec.key in given:
            errors.append((f"{path}.{name}", f"{spec.key} is given twice"))
            continue
        given[spec.key] = value
    out: dict[str, Any] = {}
    for spec in schema.params:
        where = f"{path}.{spec.key}"
        value = given.get(spec.key)
        if value is None:
            if spec.required:
                errors.append((where, f"is required by {action.value}"))
            elif operation_type is not None and operation_type in spec.required_in:
                errors.append(
                    (where, f"is required in {operation_type.value} rules: {spec.required_reason}")
                )
            continue
        try:
            out[spec.key] = spec.normalize(value)
        except ValueError as exc:
            errors.append((where, str(exc)))
    return out, errors
