"""The checks behind each action parameter, and action names in any casing.

`nico.rules.schema` has one parameter model per action built from these checks. The
engine reads parameters exactly as they store them: snake_case keys as seed 004 spells
them (camelCase accepted on input), durations as written, component types as wire
names, choice values lower-case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nico.domain import (
    POWER_CODES,
    POWER_STATE_TO_CODE,
    ComponentType,
    power_code,
)
from nico.rules.durations import DurationError, GoDuration, parse_duration
from nico.rules.model import MAX_DURATION, ActionName

YAML_BOOL_HINT = ' (YAML reads an unquoted on/off as true/false: write "on" or "off")'

Normalizer = Callable[[Any], Any]


def non_empty_string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def duration_limit_problem(parsed: GoDuration) -> str | None:
    """Why a rule cannot use this duration (over MAX_DURATION or infinite), else None."""
    if parsed.seconds <= MAX_DURATION.seconds:
        return None
    return f"must be at most {MAX_DURATION.text} ({MAX_DURATION.seconds / 86400:g} days)"


def positive_duration(value: Any) -> str:
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


def choice(choices: tuple[str, ...]) -> Normalizer:
    def check(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        hint = YAML_BOOL_HINT if isinstance(value, bool) else ""
        raise ValueError(f"must be one of [{' '.join(choices)}]{hint}")

    return check


def power_operation(value: Any) -> str:
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


def component_types(value: Any) -> list[str]:
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


# Actions that poll until a condition holds: they need both `timeout` and `pollInterval`.
POLLING = frozenset(
    {ActionName.VERIFY_POWER_STATUS, ActionName.VERIFY_REACHABILITY, ActionName.WAIT_BRING_UP}
)

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
