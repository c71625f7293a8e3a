"""Full server-side validation of a rule definition, every problem named by field path.

Input may use seed 004's camelCase keys or upstream's snake_case ones; the result is the
typed model whose `to_wire()` is the normalized camelCase form that gets stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nico.domain import ComponentType, OperationType
from nico.errors import ValidationFailed
from nico.rules.actions import (
    ACTION_SCHEMAS,
    check_parameters,
    duration_limit_problem,
    parse_action_name,
    snake,
)
from nico.rules.durations import DurationError, GoDuration, parse_duration
from nico.rules.model import (
    MAX_ATTEMPTS,
    MAX_PARALLEL,
    MAX_STAGE,
    RULE_DEFINITION_VERSION,
    RuleDefinition,
)

INVALID_DEFINITION = "Failed to validate rule definition"

Errors = list[tuple[str, str]]

_DEFINITION_KEYS = ("version", "steps")
_STEP_KEYS = (
    "componentType",
    "stage",
    "maxParallel",
    "timeout",
    "retry",
    "preOperation",
    "mainOperation",
    "postOperation",
    "delayAfter",
)
_RETRY_KEYS = ("maxAttempts", "initialInterval", "backoffCoefficient", "maxInterval")
_ACTION_KEYS = ("name", "timeout", "pollInterval", "parameters")


def validate_rule_definition(
    raw: Any,
    *,
    operation_type: OperationType,
    operation_code: str,
    path_prefix: str = "ruleDefinition",
) -> RuleDefinition:
    """The typed definition, or ValidationFailed listing every problem by field path."""
    wire, errors = check_rule_definition(
        raw, operation_type=operation_type, operation_code=operation_code, path=path_prefix
    )
    if errors or wire is None:
        raise ValidationFailed(INVALID_DEFINITION, errors)
    return RuleDefinition.from_wire(wire)


def check_rule_definition(
    raw: Any,
    *,
    operation_type: OperationType | None,
    operation_code: str | None,
    path: str = "ruleDefinition",
) -> tuple[dict[str, Any] | None, Errors]:
    """Normalized camelCase wire dict (None when invalid) and every problem found.

    `operation_type` None (the type itself was invalid) skips the checks that depend on
    it; `operation_code` is accepted for code-specific checks and currently needs none.
    """
    del operation_code
    errors: Errors = []
    fields = object_fields(raw, _DEFINITION_KEYS, path, errors)
    if fields is None:
        return None, errors
    version = fields.get("version")
    if version is None:
        errors.append((f"{path}.version", "is required"))
    elif version != RULE_DEFINITION_VERSION:
        errors.append((f"{path}.version", f"must be {RULE_DEFINITION_VERSION}"))
    steps_raw = fields.get("steps")
    steps: list[dict[str, Any]] = []
    if steps_raw is None:
        errors.append((f"{path}.steps", "is required: a rule needs at least one step"))
    elif not isinstance(steps_raw, list):
        errors.append((f"{path}.steps", "must be a list of steps"))
    elif not steps_raw:
        errors.append((f"{path}.steps", "must contain at least one step"))
    else:
        for index, step_raw in enumerate(steps_raw):
            step = _step(step_raw, f"{path}.steps[{index}]", operation_type, errors)
            if step is not None:
                steps.append(step)
        _unique_types_per_stage(steps_raw, f"{path}.steps", errors)
    if errors:
        return None, errors
    return {"version": RULE_DEFINITION_VERSION, "steps": steps}, errors


def object_fields(
    raw: Any, keys: tuple[str, ...], path: str, errors: Errors
) -> dict[str, Any] | None:
    """Map camelCase and snake_case keys to the canonical camelCase; flag unknown ones.

    A null value counts as absent. `path` "" is the request body itself.
    """
    if not isinstance(raw, Mapping):
        errors.append((path or "body", "must be an object"))
        return None
    by_spelling = {k: k for k in keys} | {snake(k): k for k in keys}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        canonical = by_spelling.get(str(key))
        if canonical is None:
            errors.append((where, f"is not a known field ({', '.join(keys)})"))
        elif canonical in out:
            errors.append((where, f"{canonical} is given twice"))
        elif value is not None:
            out[canonical] = value
    return out


def _int(value: Any, path: str, minimum: int, maximum: int, errors: Errors) -> int | None:
    """A JSON/YAML integer in [minimum, maximum]; a float (2.0, 1e20) is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append((path, "must be an integer"))
        return None
    if value < minimum:
        errors.append((path, f"must be at least {minimum}"))
        return None
    if value > maximum:
        errors.append((path, f"must be at most {maximum}"))
        return None
    return value


def _duration(value: Any, path: str, errors: Errors, *, allow_zero: bool) -> GoDuration | None:
    try:
        parsed = parse_duration(value)
    except DurationError as exc:
        errors.append((path, str(exc)))
        return None
    if parsed.seconds < 0 or (parsed.seconds == 0 and not allow_zero):
        errors.append((path, "must be a positive duration" if not allow_zero else "must be >= 0"))
        return None
    problem = duration_limit_problem(parsed)
    if problem is not None:
        errors.append((path, problem))
        return None
    return parsed


def _step(
    raw: Any, path: str, operation_type: OperationType | None, errors: Errors
) -> dict[str, Any] | None:
    fields = object_fields(raw, _STEP_KEYS, path, errors)
    if fields is None:
        return None
    out: dict[str, Any] = {}
    if "componentType" not in fields:
        errors.append((f"{path}.componentType", "is required"))
    else:
        try:
            component = ComponentType.parse(fields["componentType"])
        except ValueError as exc:
            errors.append((f"{path}.componentType", str(exc)))
        else:
            if component.operable:
                out["componentType"] = component.value
            else:
                errors.append(
                    (
                        f"{path}.componentType",
                        f"{component.value} is inventory-only; rules can target "
                        "Compute, NVLSwitch or PowerShelf",
                    )
                )
    if "stage" not in fields:
        errors.append((f"{path}.stage", "is required"))
    else:
        stage = _int(fields["stage"], f"{path}.stage", 1, MAX_STAGE, errors)
        if stage is not None:
            out["stage"] = stage
    max_parallel = _int(
        fields.get("maxParallel", 0), f"{path}.maxParallel", 0, MAX_PARALLEL, errors
    )
    out["maxParallel"] = max_parallel if max_parallel is not None else 0
    if "timeout" in fields:
        timeout = _duration(fields["timeout"], f"{path}.timeout", errors, allow_zero=False)
        if timeout is not None:
            out["timeout"] = timeout.text
    if "retry" in fields:
        retry = _retry(fields["retry"], f"{path}.retry", errors)
        if retry is not None:
            out["retry"] = retry
    for key in ("preOperation", "postOperation"):
        if key not in fields:
            continue
        actions = fields[key]
        if not isinstance(actions, list):
            errors.append((f"{path}.{key}", "must be a list of actions"))
            continue
        checked = [
            _action(a, f"{path}.{key}[{i}]", operation_type, errors) for i, a in enumerate(actions)
        ]
        out[key] = [a for a in checked if a is not None]
    if "mainOperation" not in fields:
        errors.append((f"{path}.mainOperation", "is required"))
    else:
        main = _action(fields["mainOperation"], f"{path}.mainOperation", operation_type, errors)
        if main is not None:
            out["mainOperation"] = main
    if "delayAfter" in fields:
        delay = _duration(fields["delayAfter"], f"{path}.delayAfter", errors, allow_zero=True)
        if delay is not None:
            out["delayAfter"] = delay.text
    return out


def _retry(raw: Any, path: str, errors: Errors) -> dict[str, Any] | None:
    fields = object_fields(raw, _RETRY_KEYS, path, errors)
    if fields is None:
        return None
    out: dict[str, Any] = {}
    for key in ("maxAttempts", "initialInterval", "backoffCoefficient"):
        if key not in fields:
            errors.append((f"{path}.{key}", "is required"))
    if "maxAttempts" in fields:
        attempts = _int(fields["maxAttempts"], f"{path}.maxAttempts", 1, MAX_ATTEMPTS, errors)
        if attempts is not None:
            out["maxAttempts"] = attempts
    initial = None
    if "initialInterval" in fields:
        initial = _duration(
            fields["initialInterval"], f"{path}.initialInterval", errors, allow_zero=False
        )
        if initial is not None:
            out["initialInterval"] = initial.text
    if "backoffCoefficient" in fields:
        coefficient = fields["backoffCoefficient"]
        if isinstance(coefficient, bool) or not isinstance(coefficient, int | float):
            errors.append((f"{path}.backoffCoefficient", "must be a number"))
        elif not _finite(coefficient):
            errors.append((f"{path}.backoffCoefficient", "must be a finite number"))
        elif coefficient < 1:
            errors.append((f"{path}.backoffCoefficient", "must be at least 1"))
        else:
            out["backoffCoefficient"] = coefficient
    if "maxInterval" in fields:
        cap = _duration(fields["maxInterval"], f"{path}.maxInterval", errors, allow_zero=False)
        if cap is not None:
            if initial is not None and cap.seconds < initial.seconds:
                errors.append(
                    (f"{path}.maxInterval", f"must be at least initialInterval ({initial.text})")
                )
            else:
                out["maxInterval"] = cap.text
    return out


def _finite(number: int | float) -> bool:
    """False for NaN, infinities (YAML `.nan`, `.inf`) and integers beyond float range."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _action(
    raw: Any, path: str, operation_type: OperationType | None, errors: Errors
) -> dict[str, Any] | None:
    fields = object_fields(raw, _ACTION_KEYS, path, errors)
    if fields is None:
        return None
    if "name" not in fields:
        errors.append((f"{path}.name", "is required"))
        return None
    try:
        name = parse_action_name(fields["name"])
    except ValueError as exc:
        errors.append((f"{path}.name", str(exc)))
        return None
    schema = ACTION_SCHEMAS[name]
    out: dict[str, Any] = {"name": name.value}
    timeout = poll = None
    if "timeout" in fields:
        timeout = _duration(fields["timeout"], f"{path}.timeout", errors, allow_zero=False)
        if timeout is not None:
            out["timeout"] = timeout.text
    elif schema.polls:
        errors.append((f"{path}.timeout", f"is required by {name.value} (it bounds the polling)"))
    if "pollInterval" in fields:
        poll = _duration(fields["pollInterval"], f"{path}.pollInterval", errors, allow_zero=False)
        if poll is not None:
            out["pollInterval"] = poll.text
    elif schema.polls:
        errors.append((f"{path}.pollInterval", f"is required by {name.value}"))
    if timeout is not None and poll is not None and poll.seconds > timeout.seconds:
        errors.append((f"{path}.pollInterval", f"must not exceed timeout ({timeout.text})"))
    raw_params = fields.get("parameters", {})
    if not isinstance(raw_params, Mapping):
        errors.append((f"{path}.parameters", "must be an object"))
        return None
    params, problems = check_parameters(name, raw_params, f"{path}.parameters", operation_type)
    errors.extend(problems)
    if params:
        out["parameters"] = params
    return out


def _unique_types_per_stage(steps: list[Any], path: str, errors: Errors) -> None:
    seen: dict[tuple[int, ComponentType], int] = {}
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        stage = step.get("stage")
        kind = step.get("componentType", step.get("component_type"))
        if not isinstance(stage, int) or isinstance(stage, bool):
            continue
        try:
            component = ComponentType.parse(kind)
        except ValueError:
            continue
        first = seen.setdefault((stage, component), index)
        if first != index:
            errors.append(
                (
                    f"{path}[{index}].componentType",
                    f"{component.value} already has a step in stage {stage} "
                    f"(steps[{first}]); component types must be unique within a stage",
                )
            )
