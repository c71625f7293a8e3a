"""The one rule model: a pydantic family that validates a rule definition and is the
schema `/openapi.json` publishes (seed 004's components: RuleDefinition, SequenceStep,
ActionConfig, RetryPolicy, RuleDefinitionVersion, ActionConfigName).

Input may use seed 004's camelCase keys or upstream's snake_case ones; a null counts as
absent. Durations are `Duration`: validated Go durations that keep the text the user
wrote. An action's `parameters` are checked by the parameter model its name selects
(`PARAMETER_MODELS`). Every problem is reported at once, by field path, in the same
words as before this model existed (`check_definition`).

Problems that involve two fields (a poll interval longer than its timeout, a component
type twice in a stage, a polling action without a timeout) are found by the enclosing
model before its fields are validated and handed to the field they are reported on as a
`_Problem`, so they appear next to every other problem instead of after them.
`nico.rules.model` keeps the engine's frozen dataclass view of the validated result.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, NoReturn

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from nico.domain import FIRMWARE_CODES, ComponentType, OperationType
from nico.rules import actions
from nico.rules.durations import DurationError, GoDuration, parse_duration
from nico.rules.model import (
    MAX_ATTEMPTS,
    MAX_PARALLEL,
    MAX_STAGE,
    RULE_DEFINITION_VERSION,
    ActionName,
)
from nico.schemas.common import Omittable, named_enum_copy, no_default

Errors = list[tuple[str, str]]
_PROBLEM = "rule"
_ACTION_KEY = "__action__"


class _Problem:
    """A field's problem found by its enclosing model; the field's validator raises it."""

    def __init__(self, message: str) -> None:
        self.message = message


def _fail(message: str) -> NoReturn:
    raise PydanticCustomError(_PROBLEM, message)


def _raise_problem(value: Any) -> Any:
    if isinstance(value, _Problem):
        _fail(value.message)
    return value


def _canonical(data: Any, keys: tuple[str, ...], unknown: Callable[[], str]) -> dict[str, Any]:
    """Keys spelled as `keys` (or their other case style), nulls dropped; an unknown or
    repeated key stays, carrying its problem for the extras validator."""
    if not isinstance(data, Mapping):
        _fail("must be an object")
    spellings = {k: k for k in keys} | {actions.snake(k): k for k in keys}
    spellings |= {to_camel(k): k for k in keys}
    out: dict[str, Any] = {}
    for key, value in data.items():
        canonical = spellings.get(str(key))
        if canonical is None:
            out[str(key)] = _Problem(unknown())
        elif canonical in out:
            out[str(key)] = _Problem(f"{canonical} is given twice")
        elif value is not None:
            out[canonical] = value
    return out


_Refused = Annotated[Any, PlainValidator(_raise_problem)]


def _int_between(minimum: int, maximum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        _raise_problem(value)
        if isinstance(value, bool) or not isinstance(value, int):
            _fail("must be an integer")  # a float (2.0, 1e20) is not one
        if value < minimum:
            _fail(f"must be at least {minimum}")
        if value > maximum:
            _fail(f"must be at most {maximum}")
        return value

    return check


def _duration(*, allow_zero: bool) -> Callable[[Any], GoDuration]:
    def check(value: Any) -> GoDuration:
        _raise_problem(value)
        try:
            parsed = parse_duration(value)
        except DurationError as exc:
            _fail(str(exc))
        if parsed.seconds < 0 or (parsed.seconds == 0 and not allow_zero):
            _fail("must be >= 0" if allow_zero else "must be a positive duration")
        problem = actions.duration_limit_problem(parsed)
        if problem is not None:
            _fail(problem)
        return parsed

    return check


def _serialize_duration(value: GoDuration) -> str:
    return value.text


# A Go duration (`30s`, `1m30s`) kept as written; positive, at most 168h.
Duration = Annotated[
    GoDuration,
    PlainValidator(_duration(allow_zero=False)),
    PlainSerializer(_serialize_duration, return_type=str),
    WithJsonSchema({"type": "string"}),
]
# The same, zero allowed (`delayAfter`).
DurationOrZero = Annotated[
    GoDuration,
    PlainValidator(_duration(allow_zero=True)),
    PlainSerializer(_serialize_duration, return_type=str),
    WithJsonSchema({"type": "string"}),
]


def _parsed(value: Any) -> GoDuration | None:
    """A duration for a cross-field comparison, None when it is not one (its own field
    reports that)."""
    try:
        return parse_duration(value)
    except DurationError:
        return None


class _RuleModel(BaseModel):
    """camelCase on the wire (snake_case accepted), nulls as absent, unknown keys refused
    by name with the known ones listed."""

    # Unknown keys are refused (see `_canonical`): published as not allowed.
    model_config = ConfigDict(
        alias_generator=to_camel,
        extra="allow",
        frozen=True,
        json_schema_extra={"additionalProperties": False},
    )
    __pydantic_extra__: dict[str, _Refused] = Field(init=False)

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return tuple(info.alias or name for name, info in cls.model_fields.items())

    @classmethod
    def _canonical(cls, data: Any) -> dict[str, Any]:
        keys = cls._keys()
        return _canonical(data, keys, lambda: f"is not a known field ({', '.join(keys)})")

    def wire(self) -> dict[str, Any]:
        """The normalized camelCase JSON that is stored."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RetryPolicy(_RuleModel):
    """Retry of each action call in the step."""

    max_attempts: Annotated[int, BeforeValidator(_int_between(1, MAX_ATTEMPTS))] = Field(
        description="Maximum number of attempts including the first (1 to 100)."
    )
    initial_interval: Duration = Field(
        description="Initial retry interval, Go duration (`1s`); at most 168h."
    )
    backoff_coefficient: Annotated[
        float, WithJsonSchema({"type": "number", "format": "double"})
    ] = Field(description="Backoff multiplier; must be >= 1.0.")
    max_interval: Omittable[Duration] = Field(None, description="Cap on the retry interval.")

    @model_validator(mode="before")
    @classmethod
    def _fields(cls, data: Any) -> Any:
        data = cls._canonical(data)
        initial = _parsed(data.get("initialInterval"))
        cap = _parsed(data.get("maxInterval"))
        if initial is not None and cap is not None and 0 < cap.seconds < initial.seconds:
            data["maxInterval"] = _Problem(f"must be at least initialInterval ({initial.text})")
        return data

    @field_validator("backoff_coefficient", mode="plain")
    @classmethod
    def _coefficient(cls, value: Any) -> float:
        _raise_problem(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail("must be a number")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond float range
            finite = False
        if not finite:
            _fail("must be a finite number")
        if value < 1:
            _fail("must be at least 1")
        return float(value)


# --- per-action parameters -----------------------------------------------------------


class _Parameters(BaseModel):
    """An action's parameters: snake_case keys as seed 004 stores them (camelCase
    accepted), values normalized; which are required can depend on the rule's type."""

    model_config = ConfigDict(
        extra="allow", frozen=True, json_schema_extra={"additionalProperties": False}
    )
    __pydantic_extra__: dict[str, _Refused] = Field(init=False)
    action: ClassVar[ActionName]
    # parameter -> (operation types whose rules must set it, why)
    required_in: ClassVar[dict[str, tuple[frozenset[OperationType], str]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _fields(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = {k: v for k, v in data.items() if k != _ACTION_KEY}
        keys = tuple(cls.model_fields)
        known = ", ".join(keys) or "none"
        return _canonical(data, keys, lambda: f"is not a parameter of {cls.action.value} ({known})")

    @field_validator("*", mode="after", check_fields=False)
    @classmethod
    def _required_in(cls, value: Any, info: ValidationInfo) -> Any:
        """A parameter the task supplies elsewhere, but not in every operation type (its
        field is validated even when left out: `validate_default`)."""
        operation_type = (info.context or {}).get("operation_type")
        needed = cls.required_in.get(info.field_name or "")
        if value is None and needed and operation_type in needed[0]:
            _fail(f"is required in {operation_type.value} rules: {needed[1]}")
        return value


def _normalized(normalize: Callable[[Any], Any]) -> Any:
    def check(value: Any) -> Any:
        if value is None:  # an optional parameter left out
            return None
        try:
            return normalize(value)
        except ValueError as exc:
            _fail(str(exc))

    return PlainValidator(check)


_PositiveDurationText = Annotated[str, _normalized(actions.positive_duration)]


class SleepParameters(_Parameters):
    action = ActionName.SLEEP
    duration: _PositiveDurationText


class PowerControlParameters(_Parameters):
    action = ActionName.POWER_CONTROL
    required_in = {
        "operation": (
            frozenset({OperationType.FIRMWARE_CONTROL, OperationType.BRING_UP}),
            "without it PowerControl inherits the task's power code, which only "
            "PowerControl tasks have",
        )
    }
    operation: Annotated[str | None, _normalized(actions.power_operation)] = Field(
        None, validate_default=True
    )


class VerifyPowerStatusParameters(_Parameters):
    action = ActionName.VERIFY_POWER_STATUS
    expected_status: Annotated[str, _normalized(actions.choice(("on", "off")))]


class VerifyReachabilityParameters(_Parameters):
    action = ActionName.VERIFY_REACHABILITY
    component_types: Annotated[list[str], _normalized(actions.component_types)]
    require_all: Annotated[bool | None, _normalized(actions.boolean)] = None


class FirmwareControlParameters(_Parameters):
    action = ActionName.FIRMWARE_CONTROL
    operation: Annotated[str | None, _normalized(actions.choice(FIRMWARE_CODES))] = None
    poll_interval: _PositiveDurationText | None = None
    poll_timeout: _PositiveDurationText | None = None


class VerifyFirmwareVersionParameters(_Parameters):
    action = ActionName.VERIFY_FIRMWARE_VERSION
    required_in = {
        "expected_version": (
            frozenset({OperationType.POWER_CONTROL, OperationType.BRING_UP}),
            "only FirmwareControl tasks request a firmware version to compare against",
        )
    }
    expected_version: Annotated[str | None, _normalized(actions.non_empty_string)] = Field(
        None, validate_default=True
    )


def _no_parameters(action: ActionName) -> type[_Parameters]:
    model = type(f"{action.value}Parameters", (_Parameters,), {"action": action})
    return model


PARAMETER_MODELS: dict[ActionName, type[_Parameters]] = {
    model.action: model
    for model in (
        SleepParameters,
        PowerControlParameters,
        VerifyPowerStatusParameters,
        VerifyReachabilityParameters,
        _no_parameters(ActionName.GET_POWER_STATUS),
        FirmwareControlParameters,
        VerifyFirmwareVersionParameters,
        _no_parameters(ActionName.VERIFY_FIRMWARE_CONSISTENCY),
        _no_parameters(ActionName.BRING_UP_CONTROL),
        _no_parameters(ActionName.WAIT_BRING_UP),
        _no_parameters(ActionName.INJECT_EXPECTATION),
    )
}


def _action_of(value: Any) -> str | None:
    return value.get(_ACTION_KEY) if isinstance(value, Mapping) else None


_PARAMETER_UNION: Any = functools.reduce(
    operator.or_, (Annotated[m, Tag(a.value)] for a, m in PARAMETER_MODELS.items())
)
_AnyParameters = Annotated[
    _PARAMETER_UNION,
    Discriminator(_action_of),
    BeforeValidator(_raise_problem),
    PlainSerializer(lambda p: p.model_dump(mode="json", exclude_none=True), return_type=dict),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": True,
            "description": "Action-specific parameters (snake_case keys, as in seed 004), "
            "checked against the action's parameter model.",
        }
    ),
]


# --- actions, steps, definition ------------------------------------------------------

if TYPE_CHECKING:
    ActionConfigName = ActionName
else:
    ActionConfigName = named_enum_copy(
        "ActionConfigName", ActionName, "Executor-agnostic action names (seed 004)."
    )


def _action_name(value: Any) -> Any:
    _raise_problem(value)
    try:
        return actions.parse_action_name(value).value
    except ValueError as exc:
        _fail(str(exc))


class ActionConfig(_RuleModel):
    """One action: name, optional timeout/poll interval, parameters per the action."""

    name: Annotated[ActionConfigName, BeforeValidator(_action_name)]
    timeout: Omittable[Duration] = Field(
        None, description="Per-attempt bound of one call; for polling actions the poll loop."
    )
    poll_interval: Omittable[Duration] = Field(
        None, description="Poll interval of polling actions."
    )
    parameters: Omittable[_AnyParameters] = None

    @model_validator(mode="before")
    @classmethod
    def _fields(cls, data: Any) -> Any:
        data = cls._canonical(data)
        try:
            name = actions.parse_action_name(data.get("name"))
        except ValueError:
            # Without a valid name nothing else of the action can be judged.
            return {"name": data["name"]} if "name" in data else {}
        polls = name in actions.POLLING
        if polls and "timeout" not in data:
            data["timeout"] = _Problem(f"is required by {name.value} (it bounds the polling)")
        if polls and "pollInterval" not in data:
            data["pollInterval"] = _Problem(f"is required by {name.value}")
        timeout, poll = _parsed(data.get("timeout")), _parsed(data.get("pollInterval"))
        if timeout is not None and poll is not None and poll.seconds > timeout.seconds > 0:
            data["pollInterval"] = _Problem(f"must not exceed timeout ({timeout.text})")
        raw = data.get("parameters", {})
        if isinstance(raw, Mapping):
            data["parameters"] = {**raw, _ACTION_KEY: name.value}
        else:
            data["parameters"] = _Problem("must be an object")
        return data


def _component_type(value: Any) -> str:
    _raise_problem(value)
    try:
        component = ComponentType.parse(value)
    except ValueError as exc:
        _fail(str(exc))
    if not component.operable:
        _fail(
            f"{component.value} is inventory-only; rules can target "
            "Compute, NVLSwitch or PowerShelf"
        )
    return component.value


def _list_of(what: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        _raise_problem(value)
        if not isinstance(value, list):
            _fail(f"must be a list of {what}")
        return value

    return check


_Actions = Annotated[list[ActionConfig], BeforeValidator(_list_of("actions"))]


class SequenceStep(_RuleModel):
    """One component type's work within a stage: pre -> main -> post per tray."""

    component_type: Annotated[
        str, PlainValidator(_component_type), WithJsonSchema({"type": "string"})
    ] = Field(description="Compute, NVLSwitch or PowerShelf.")
    stage: Annotated[int, BeforeValidator(_int_between(1, MAX_STAGE))] = Field(
        description="Stage number (1 to 1000); same stage runs in parallel."
    )
    max_parallel: Annotated[int, BeforeValidator(_int_between(0, MAX_PARALLEL))] = Field(
        0,
        description="Trays processed at once (at most 10000); 0 = all.",
        json_schema_extra=no_default,
    )
    timeout: Omittable[Duration] = Field(None, description="Bound of the whole step; at most 168h.")
    retry: Omittable[Annotated[RetryPolicy, BeforeValidator(_raise_problem)]] = None
    pre_operation: Omittable[_Actions] = None
    main_operation: Annotated[ActionConfig, BeforeValidator(_raise_problem)]
    post_operation: Omittable[_Actions] = None
    delay_after: Omittable[DurationOrZero] = Field(
        None, description="Deprecated: a Sleep after post."
    )

    @model_validator(mode="before")
    @classmethod
    def _fields(cls, data: Any) -> Any:
        return cls._canonical(data)


class RuleDefinitionVersion(StrEnum):
    """Schema version. Currently always `v1`."""

    V1 = RULE_DEFINITION_VERSION


def _version(value: Any) -> Any:
    _raise_problem(value)
    if value != RULE_DEFINITION_VERSION:
        _fail(f"must be {RULE_DEFINITION_VERSION}")
    return value


class RuleDefinition(_RuleModel):
    """The executable schedule of an operation rule (seed 004)."""

    version: Annotated[RuleDefinitionVersion, BeforeValidator(_version)]
    # Always checked (the model validator supplies a missing one as a problem), so the
    # default is never used; seed 004 does not list `steps` as required.
    steps: Annotated[list[SequenceStep], BeforeValidator(_raise_problem)] = Field(
        default_factory=list, json_schema_extra=no_default
    )

    @model_validator(mode="before")
    @classmethod
    def _fields(cls, data: Any) -> Any:
        data = cls._canonical(data)
        steps = data.get("steps")
        if steps is None:
            data["steps"] = _Problem("is required: a rule needs at least one step")
        elif not isinstance(steps, list):
            data["steps"] = _Problem("must be a list of steps")
        elif not steps:
            data["steps"] = _Problem("must contain at least one step")
        else:
            data["steps"] = _unique_types_per_stage(steps)
        return data


def _unique_types_per_stage(steps: list[Any]) -> list[Any]:
    """Copies of the steps, a repeated (stage, component type) marked on its type."""
    seen: dict[tuple[int, ComponentType], int] = {}
    out: list[Any] = []
    for index, step in enumerate(steps):
        out.append(step)
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
            marked = {k: v for k, v in step.items() if k != "component_type"}
            marked["componentType"] = _Problem(
                f"{component.value} already has a step in stage {stage} "
                f"(steps[{first}]); component types must be unique within a stage"
            )
            out[-1] = marked
    return out


# --- errors by field path --------------------------------------------------------------

_TAGS = frozenset(a.value for a in ActionName)
_MESSAGES = {
    "missing": "is required",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
}


def _path(prefix: str, loc: tuple[Any, ...]) -> tuple[str, str | None]:
    """`ruleDefinition.steps[0].postOperation[1].parameters.duration`, and the action
    whose parameter model the location is in (its tag is not part of the path)."""
    out, action = prefix, None
    previous: Any = None
    for part in loc:
        if previous == "parameters" and part in _TAGS:
            action = part
        elif isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out, action


def problems(error: ValidationError, prefix: str) -> Errors:
    """(field path, message) of every problem, in our words."""
    out: Errors = []
    for item in error.errors(include_url=False):
        path, action = _path(prefix, tuple(item["loc"]))
        kind = item["type"]
        if kind == "missing" and action is not None:
            message = f"is required by {action}"
        else:
            message = _MESSAGES.get(kind) or str(item["msg"]).removeprefix("Value error, ")
        if kind == "union_tag_not_found":  # unreachable: the action key is always set
            message = "must be an object"
        if (path, message) not in out:
            out.append((path, message))
    return out


def check_definition(
    raw: Any, *, operation_type: OperationType | None, path: str = "ruleDefinition"
) -> tuple[RuleDefinition | None, Errors]:
    """The validated model (None when invalid) and every problem found. Checks that
    depend on the operation type are skipped when it is None (itself invalid)."""
    try:
        model = RuleDefinition.model_validate(
            raw, context={"operation_type": operation_type}, by_alias=True
        )
    except ValidationError as exc:
        return None, problems(exc, path)
    return model, []


__all__ = [
    "PARAMETER_MODELS",
    "ActionConfig",
    "ActionConfigName",
    "Duration",
    "RetryPolicy",
    "RuleDefinition",
    "RuleDefinitionVersion",
    "SequenceStep",
    "check_definition",
]
