"""Rule definition validation: every rule has a failing input naming its field path."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from nico.domain import OperationType
from nico.errors import ValidationFailed
from nico.rules.validation import validate_rule_definition
from tests.rules.support import seed_example_rule

POWER = OperationType.POWER_CONTROL
FIRMWARE = OperationType.FIRMWARE_CONTROL
BRING_UP = OperationType.BRING_UP
P = "ruleDefinition.steps[0]"


def seed_definition() -> dict[str, Any]:
    definition: dict[str, Any] = seed_example_rule()["ruleDefinition"]
    return definition


def errors_of(
    definition: Any, operation_type: OperationType = POWER, code: str = "power_on"
) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_rule_definition(definition, operation_type=operation_type, operation_code=code)
    assert caught.value.status_code == 400
    assert caught.value.data is not None
    # The message names every field too, as `path: message; ...`.
    for path in caught.value.data:
        assert path in caught.value.message
    return {path: str(msg) for path, msg in caught.value.data.items()}


def with_step(**changes: Any) -> dict[str, Any]:
    definition = seed_definition()
    definition["steps"][0].update(changes)
    return definition


def with_action(where: str, action: dict[str, Any]) -> dict[str, Any]:
    definition = seed_definition()
    step = definition["steps"][0]
    if where == "main":
        step["mainOperation"] = action
    else:
        step["postOperation"] = [action]
    return definition


def test_seed_example_validates_and_reads_back_unchanged() -> None:
    definition = seed_definition()
    parsed = validate_rule_definition(
        copy.deepcopy(definition), operation_type=POWER, operation_code="power_on"
    )
    assert parsed.to_wire() == definition
    assert parsed.steps[0].main_operation.timeout is not None
    assert parsed.steps[0].main_operation.timeout.text == "1m"
    assert parsed.steps[0].main_operation.timeout.seconds == 60


@pytest.mark.parametrize(
    ("definition", "path", "fragment"),
    [
        ({"version": "v2", "steps": []}, "ruleDefinition.version", "must be v1"),
        ({"version": "v1", "steps": []}, "ruleDefinition.steps", "at least one step"),
        ({"version": "v1"}, "ruleDefinition.steps", "at least one step"),
        ({"version": "v1", "steps": {}}, "ruleDefinition.steps", "must be a list"),
        ({"version": "v1", "steps": [], "stages": 1}, "ruleDefinition.stages", "not a known"),
        ("steps", "ruleDefinition", "must be an object"),
        (with_step(componentType="GPU"), f"{P}.componentType", "unknown component type"),
        (with_step(componentType="CDU"), f"{P}.componentType", "inventory-only"),
        (with_step(componentType=None), f"{P}.componentType", "is required"),
        (with_step(stage=0), f"{P}.stage", "at least 1"),
        (with_step(stage="1"), f"{P}.stage", "must be an integer"),
        (with_step(stage=True), f"{P}.stage", "must be an integer"),
        (with_step(maxParallel=-1), f"{P}.maxParallel", "at least 0"),
        (with_step(timeout="2"), f"{P}.timeout", "invalid duration"),
        (with_step(timeout=120), f"{P}.timeout", "not the number 120"),
        (with_step(timeout="0s"), f"{P}.timeout", "positive"),
        (with_step(timeout="-1m"), f"{P}.timeout", "positive"),
        (with_step(delayAfter="soon"), f"{P}.delayAfter", "invalid duration"),
        (with_step(mainOperation=None), f"{P}.mainOperation", "is required"),
        (with_step(preOperation={"name": "Sleep"}), f"{P}.preOperation", "must be a list"),
        (with_step(colour="red"), f"{P}.colour", "is not a known field"),
        (
            with_step(retry={"maxAttempts": 0, "initialInterval": "1s", "backoffCoefficient": 2}),
            f"{P}.retry.maxAttempts",
            "at least 1",
        ),
        (
            with_step(retry={"maxAttempts": 2, "initialInterval": "0s", "backoffCoefficient": 2}),
            f"{P}.retry.initialInterval",
            "positive",
        ),
        (
            with_step(retry={"maxAttempts": 2, "initialInterval": "1s", "backoffCoefficient": 0.5}),
            f"{P}.retry.backoffCoefficient",
            "at least 1",
        ),
        (
            with_step(retry={"maxAttempts": 2, "initialInterval": "1s"}),
            f"{P}.retry.backoffCoefficient",
            "is required",
        ),
        (
            with_step(
                retry={
                    "maxAttempts": 2,
                    "initialInterval": "10s",
                    "backoffCoefficient": 2,
                    "maxInterval": "5s",
                }
            ),
            f"{P}.retry.maxInterval",
            "at least initialInterval (10s)",
        ),
    ],
)
def test_step_and_definition_rules(definition: Any, path: str, fragment: str) -> None:
    errors = errors_of(definition)
    assert path in errors, errors
    assert fragment in errors[path]


RETRY = {"maxAttempts": 3, "initialInterval": "1s", "backoffCoefficient": 2}
HUGE_HOURS = "9" * 400 + "h"  # parses to an infinite number of seconds
TOO_LONG = "must be at most 168h (7 days)"


@pytest.mark.parametrize(
    ("definition", "path", "message"),
    [
        (with_step(stage=1001), f"{P}.stage", "must be at most 1000"),
        (with_step(stage=10**30), f"{P}.stage", "must be at most 1000"),
        (with_step(stage=1e20), f"{P}.stage", "must be an integer"),
        (with_step(stage=2.0), f"{P}.stage", "must be an integer"),
        (with_step(maxParallel=10_001), f"{P}.maxParallel", "must be at most 10000"),
        (with_step(maxParallel=4.0), f"{P}.maxParallel", "must be an integer"),
        (
            with_step(retry=RETRY | {"maxAttempts": 101}),
            f"{P}.retry.maxAttempts",
            "must be at most 100",
        ),
        (
            with_step(retry=RETRY | {"maxAttempts": 10**30}),
            f"{P}.retry.maxAttempts",
            "must be at most 100",
        ),
        (
            with_step(retry=RETRY | {"maxAttempts": 1e20}),
            f"{P}.retry.maxAttempts",
            "must be an integer",
        ),
        (
            with_step(retry=RETRY | {"maxAttempts": 3.0}),
            f"{P}.retry.maxAttempts",
            "must be an integer",
        ),
        (with_step(timeout="168h1s"), f"{P}.timeout", TOO_LONG),
        (with_step(timeout="9999999999h"), f"{P}.timeout", TOO_LONG),
        (with_step(timeout=HUGE_HOURS), f"{P}.timeout", TOO_LONG),
        (with_step(delayAfter="8760h"), f"{P}.delayAfter", TOO_LONG),
        (
            with_step(retry=RETRY | {"initialInterval": HUGE_HOURS}),
            f"{P}.retry.initialInterval",
            TOO_LONG,
        ),
        (with_step(retry=RETRY | {"maxInterval": "200h"}), f"{P}.retry.maxInterval", TOO_LONG),
    ],
)
def test_numbers_and_durations_have_ceilings(definition: Any, path: str, message: str) -> None:
    assert errors_of(definition) == {path: message}


@pytest.mark.parametrize("coefficient", [math.nan, math.inf, -math.inf, 10**400])
def test_backoff_coefficient_must_be_finite(coefficient: float) -> None:
    # YAML `.nan` / `.inf` in a rule file read by `nico rule import` arrive as floats.
    errors = errors_of(with_step(retry=RETRY | {"backoffCoefficient": coefficient}))
    assert errors == {f"{P}.retry.backoffCoefficient": "must be a finite number"}


@pytest.mark.parametrize(
    ("action", "field"),
    [
        ({"name": "Sleep", "parameters": {"duration": "169h"}}, "parameters.duration"),
        ({"name": "Sleep", "parameters": {"duration": HUGE_HOURS}}, "parameters.duration"),
        ({"name": "GetPowerStatus", "timeout": "9999999999h"}, "timeout"),
        (
            {
                "name": "VerifyPowerStatus",
                "timeout": "1000h",
                "pollInterval": "5s",
                "parameters": {"expected_status": "on"},
            },
            "timeout",
        ),
        (
            {
                "name": "FirmwareControl",
                "parameters": {"poll_interval": HUGE_HOURS, "poll_timeout": "1h"},
            },
            "parameters.poll_interval",
        ),
        (
            {"name": "FirmwareControl", "parameters": {"poll_timeout": "170h"}},
            "parameters.poll_timeout",
        ),
    ],
)
def test_action_durations_have_a_ceiling(action: dict[str, Any], field: str) -> None:
    assert errors_of(with_action("post", action)) == {f"{P}.postOperation[0].{field}": TOO_LONG}


def test_every_ceiling_itself_is_accepted() -> None:
    definition = with_step(
        stage=1000,
        maxParallel=10_000,
        timeout="168h",
        delayAfter="168h",
        retry={
            "maxAttempts": 100,
            "initialInterval": "168h",
            "backoffCoefficient": 2,
            "maxInterval": "168h",
        },
    )
    definition["steps"][0]["postOperation"] = [
        {"name": "Sleep", "parameters": {"duration": "168h"}},
        {
            "name": "VerifyPowerStatus",
            "timeout": "168h",
            "pollInterval": "168h",
            "parameters": {"expected_status": "on"},
        },
    ]
    parsed = validate_rule_definition(definition, operation_type=POWER, operation_code="power_on")
    step = parsed.steps[0]
    assert (step.stage, step.max_parallel) == (1000, 10_000)
    assert step.retry is not None and step.retry.max_attempts == 100
    # 0 still means "all trays at once".
    assert (
        validate_rule_definition(
            with_step(maxParallel=0), operation_type=POWER, operation_code="power_on"
        )
        .steps[0]
        .max_parallel
        == 0
    )


@pytest.mark.parametrize(
    ("action", "field", "fragment"),
    [
        ({"name": "Reboot"}, "name", "unknown action 'Reboot'"),
        ({}, "name", "is required"),
        ({"name": "Sleep"}, "parameters.duration", "is required by Sleep"),
        (
            {"name": "Sleep", "parameters": {"duration": 30}},
            "parameters.duration",
            "not the number",
        ),
        (
            {"name": "Sleep", "parameters": {"duration": "30s", "x": 1}},
            "parameters.x",
            "not a parameter",
        ),
        ({"name": "Sleep", "parameters": ["30s"]}, "parameters", "must be an object"),
        (
            {"name": "Sleep", "timeout": "fast", "parameters": {"duration": "1s"}},
            "timeout",
            "invalid",
        ),
        (
            {"name": "PowerControl", "parameters": {"operation": "explode"}},
            "parameters.operation",
            "must be one of",
        ),
        (
            {"name": "PowerControl", "parameters": {"operation": True}},
            "parameters.operation",
            "YAML",
        ),
        (
            {
                "name": "VerifyPowerStatus",
                "pollInterval": "5s",
                "parameters": {"expected_status": "on"},
            },
            "timeout",
            "is required by VerifyPowerStatus",
        ),
        (
            {"name": "VerifyPowerStatus", "timeout": "3m", "parameters": {"expected_status": "on"}},
            "pollInterval",
            "is required",
        ),
        (
            {
                "name": "VerifyPowerStatus",
                "timeout": "3m",
                "pollInterval": "5m",
                "parameters": {"expected_status": "on"},
            },
            "pollInterval",
            "must not exceed timeout",
        ),
        (
            {
                "name": "VerifyPowerStatus",
                "timeout": "3m",
                "pollInterval": "5s",
                "parameters": {"expected_status": "dim"},
            },
            "parameters.expected_status",
            "must be one of [on off]",
        ),
        (
            {"name": "VerifyPowerStatus", "timeout": "3m", "pollInterval": "5s"},
            "parameters.expected_status",
            "is required",
        ),
        (
            {
                "name": "VerifyReachability",
                "timeout": "3m",
                "pollInterval": "5s",
                "parameters": {"component_types": []},
            },
            "parameters.component_types",
            "non-empty list",
        ),
        (
            {
                "name": "VerifyReachability",
                "timeout": "3m",
                "pollInterval": "5s",
                "parameters": {"component_types": ["Toaster"]},
            },
            "parameters.component_types",
            "unknown component type",
        ),
        (
            {
                "name": "VerifyReachability",
                "timeout": "3m",
                "pollInterval": "5s",
                "parameters": {"component_types": ["Compute"], "require_all": "yes"},
            },
            "parameters.require_all",
            "true or false",
        ),
        (
            {"name": "GetPowerStatus", "parameters": {"verbose": True}},
            "parameters.verbose",
            "not a parameter",
        ),
        (
            {"name": "FirmwareControl", "parameters": {"operation": "flash"}},
            "parameters.operation",
            "upgrade downgrade rollback",
        ),
        (
            {"name": "FirmwareControl", "parameters": {"poll_timeout": "forever"}},
            "parameters.poll_timeout",
            "invalid duration",
        ),
        (
            {"name": "VerifyFirmwareVersion", "parameters": {"expected_version": ""}},
            "parameters.expected_version",
            "non-empty",
        ),
        (
            {"name": "VerifyFirmwareConsistency", "parameters": {"strict": True}},
            "parameters.strict",
            "not a parameter",
        ),
        ({"name": "BringUpControl", "parameters": {"x": 1}}, "parameters.x", "not a parameter"),
        ({"name": "WaitBringUp", "pollInterval": "30s"}, "timeout", "is required by WaitBringUp"),
        (
            {"name": "InjectExpectation", "parameters": {"payload": {}}},
            "parameters.payload",
            "not a parameter",
        ),
    ],
)
def test_action_rules(action: dict[str, Any], field: str, fragment: str) -> None:
    errors = errors_of(with_action("post", action))
    path = f"{P}.postOperation[0].{field}"
    assert path in errors, errors
    assert fragment in errors[path]


def test_every_problem_is_listed_at_once() -> None:
    definition = seed_definition()
    definition["steps"][0]["stage"] = 0
    definition["steps"][0]["postOperation"][0]["parameters"]["expected_status"] = "dim"
    definition["steps"].append(
        {"componentType": "Compute", "stage": 0, "mainOperation": {"name": "Nope"}}
    )
    errors = errors_of(definition)
    assert set(errors) >= {
        f"{P}.stage",
        f"{P}.postOperation[0].parameters.expected_status",
        "ruleDefinition.steps[1].stage",
        "ruleDefinition.steps[1].mainOperation.name",
    }


def test_component_types_are_unique_within_a_stage() -> None:
    definition = seed_definition()
    definition["steps"].append(
        {"componentType": "compute", "stage": 1, "mainOperation": {"name": "GetPowerStatus"}}
    )
    errors = errors_of(definition)
    assert "already has a step in stage 1" in errors["ruleDefinition.steps[1].componentType"]
    definition["steps"][1]["stage"] = 2
    validate_rule_definition(definition, operation_type=POWER, operation_code="power_on")


def test_power_control_without_operation_only_in_power_rules() -> None:
    definition = {
        "version": "v1",
        "steps": [
            {"componentType": "Compute", "stage": 1, "mainOperation": {"name": "PowerControl"}}
        ],
    }
    validate_rule_definition(definition, operation_type=POWER, operation_code="restart")
    for kind, code in ((FIRMWARE, "upgrade"), (BRING_UP, "bring_up")):
        errors = errors_of(definition, kind, code)
        message = errors[f"{P}.mainOperation.parameters.operation"]
        assert f"required in {kind.value} rules" in message
    definition["steps"][0]["mainOperation"]["parameters"] = {"operation": "power_on"}
    validate_rule_definition(definition, operation_type=BRING_UP, operation_code="bring_up")


def test_verify_firmware_version_needs_a_version_outside_firmware_rules() -> None:
    definition = {
        "version": "v1",
        "steps": [
            {
                "componentType": "Compute",
                "stage": 1,
                "mainOperation": {"name": "VerifyFirmwareVersion"},
            }
        ],
    }
    validate_rule_definition(definition, operation_type=FIRMWARE, operation_code="upgrade")
    # Power and bring-up tasks request no version, so the check would always fail.
    for kind, code in ((POWER, "power_on"), (BRING_UP, "bring_up")):
        errors = errors_of(definition, kind, code)
        message = errors[f"{P}.mainOperation.parameters.expected_version"]
        assert f"required in {kind.value} rules" in message
    definition["steps"][0]["mainOperation"]["parameters"] = {"expected_version": "2.0.0"}
    validate_rule_definition(definition, operation_type=BRING_UP, operation_code="bring_up")


def test_snake_case_keys_and_values_are_normalized() -> None:
    parsed = validate_rule_definition(
        {
            "version": "v1",
            "steps": [
                {
                    "component_type": "nvswitch",
                    "stage": 2,
                    "max_parallel": 3,
                    "pre_operation": [
                        {
                            "name": "verifyreachability",
                            "timeout": "2m",
                            "poll_interval": "10s",
                            "parameters": {"componentTypes": ["POWERSHELF"], "requireAll": False},
                        }
                    ],
                    "main_operation": {
                        "name": "PowerControl",
                        "parameters": {"operation": "ForceOff"},
                    },
                }
            ],
        },
        operation_type=POWER,
        operation_code="force_power_off",
    )
    assert parsed.to_wire() == {
        "version": "v1",
        "steps": [
            {
                "componentType": "NVLSwitch",
                "stage": 2,
                "maxParallel": 3,
                "preOperation": [
                    {
                        "name": "VerifyReachability",
                        "timeout": "2m",
                        "pollInterval": "10s",
                        "parameters": {"component_types": ["PowerShelf"], "require_all": False},
                    }
                ],
                "mainOperation": {"name": "PowerControl", "parameters": {"operation": "forceoff"}},
            }
        ],
    }


def test_same_key_in_both_spellings_is_refused() -> None:
    errors = errors_of(with_step(max_parallel=1))
    assert "maxParallel is given twice" in errors[f"{P}.max_parallel"]


def test_durations_keep_the_text_written() -> None:
    definition = with_step(timeout="1m30s", delayAfter="500ms")
    parsed = validate_rule_definition(definition, operation_type=POWER, operation_code="power_on")
    step = parsed.to_wire()["steps"][0]
    assert (step["timeout"], step["delayAfter"]) == ("1m30s", "500ms")
    assert parsed.steps[0].timeout is not None and parsed.steps[0].timeout.seconds == 90
