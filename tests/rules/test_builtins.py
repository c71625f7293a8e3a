"""Built-in rules: one for every code, each passes the validator, shapes as promised."""

from __future__ import annotations

import pytest

from nico.config import Settings
from nico.domain import OPERATION_CODES, OperationType
from nico.engine.policy import attempt_deadline, attempt_timeout
from nico.hardware.redfish.client import BUSY_RETRIES, MAX_RETRY_AFTER_SECONDS
from nico.rules.builtins import BUILTIN_RULES, builtin_rule
from nico.rules.model import ActionName, RuleDefinition
from nico.rules.validation import validate_rule_definition

ALL_CODES = [(t, c) for t, codes in OPERATION_CODES.items() for c in codes]


@pytest.mark.parametrize(("operation_type", "code"), ALL_CODES)
def test_every_code_has_a_valid_builtin(operation_type: OperationType, code: str) -> None:
    rule = builtin_rule(operation_type, code)
    checked = validate_rule_definition(
        rule.definition_wire, operation_type=operation_type, operation_code=code
    )
    assert checked.to_wire() == rule.definition.to_wire()
    assert rule.definition.steps, "a built-in must do something"
    assert rule.name and rule.description


def test_no_builtin_for_an_unknown_code() -> None:
    assert set(BUILTIN_RULES) == set(ALL_CODES)


def order(definition: RuleDefinition) -> list[list[str]]:
    return [[s.component_type.value for _, s in stage.steps] for stage in definition.stages()]


def verify_timeouts(definition: RuleDefinition) -> list[float]:
    return [
        a.timeout.seconds
        for s in definition.steps
        for a in s.actions()
        if a.name is ActionName.VERIFY_POWER_STATUS and a.timeout is not None
    ]


def test_graceful_power_on_goes_shelves_switches_compute_and_verifies() -> None:
    rule = builtin_rule(OperationType.POWER_CONTROL, "power_on").definition
    assert order(rule) == [["PowerShelf"], ["NVLSwitch"], ["Compute"]]
    for step in rule.steps:
        assert step.main_operation.name is ActionName.POWER_CONTROL
        assert not step.main_operation.parameters, "inherits the task's code"
        assert step.post_operation[0].parameters == {"expected_status": "on"}
    assert min(verify_timeouts(rule)) >= 180


def test_graceful_power_off_is_the_reverse() -> None:
    rule = builtin_rule(OperationType.POWER_CONTROL, "power_off").definition
    assert order(rule) == [["Compute"], ["NVLSwitch"], ["PowerShelf"]]
    assert all(s.post_operation[0].parameters == {"expected_status": "off"} for s in rule.steps)


@pytest.mark.parametrize(("code", "status"), [("force_power_on", "on"), ("force_power_off", "off")])
def test_force_variants_verify_in_a_final_parallel_stage(code: str, status: str) -> None:
    rule = builtin_rule(OperationType.POWER_CONTROL, code).definition
    last = rule.stages()[-1]
    assert sorted(s.component_type.value for _, s in last.steps) == [
        "Compute",
        "NVLSwitch",
        "PowerShelf",
    ]
    for _, step in last.steps:
        assert step.main_operation.name is ActionName.VERIFY_POWER_STATUS
        assert step.main_operation.parameters == {"expected_status": status}
    earlier = [s for st in rule.stages()[:-1] for _, s in st.steps]
    assert all(s.main_operation.name is ActionName.POWER_CONTROL for s in earlier)
    assert min(verify_timeouts(rule)) >= 180


def test_restart_is_the_off_sequence_then_the_on_sequence() -> None:
    rule = builtin_rule(OperationType.POWER_CONTROL, "restart").definition
    off = [["Compute"], ["NVLSwitch"], ["PowerShelf"]]
    assert order(rule) == [*off, *reversed(off)]
    operations = [s.main_operation.parameters["operation"] for s in rule.steps]
    assert operations == ["power_off"] * 3 + ["power_on"] * 3


def test_resets_have_real_rules_that_keep_shelves_powered() -> None:
    for code in ("warm_reset", "cold_reset"):
        rule = builtin_rule(OperationType.POWER_CONTROL, code).definition
        assert order(rule) == [["NVLSwitch"], ["Compute"]]


def test_firmware_updates_compute_and_switches_in_parallel_and_verifies() -> None:
    rule = builtin_rule(OperationType.FIRMWARE_CONTROL, "upgrade").definition
    assert order(rule) == [["Compute", "NVLSwitch"]]
    for step in rule.steps:
        assert step.main_operation.name is ActionName.FIRMWARE_CONTROL
        assert "poll_interval" in step.main_operation.parameters
        assert step.post_operation[0].name is ActionName.VERIFY_FIRMWARE_VERSION


def test_bring_up_ingests_then_powers_shelves_then_brings_compute_up() -> None:
    rule = builtin_rule(OperationType.BRING_UP, "bring_up").definition
    stages = rule.stages()
    assert {s.main_operation.name for _, s in stages[0].steps} == {ActionName.INJECT_EXPECTATION}
    assert order(rule)[1:] == [["PowerShelf"], ["NVLSwitch"], ["Compute"]]
    compute = stages[-1].steps[0][1]
    assert [a.name for a in compute.actions()] == [
        ActionName.BRING_UP_CONTROL,
        ActionName.POWER_CONTROL,
        ActionName.WAIT_BRING_UP,
        ActionName.VERIFY_POWER_STATUS,
    ]


def test_ingest_injects_expectations_for_all_three_types() -> None:
    rule = builtin_rule(OperationType.BRING_UP, "ingest").definition
    assert sorted(order(rule)[0]) == ["Compute", "NVLSwitch", "PowerShelf"]


def test_one_hardware_call_attempt_outlasts_a_slow_redfish_bmc() -> None:
    """A built-in PowerControl or FirmwareControl start attempt is not cut short by the
    Redfish client's own worst case at the default settings: one POST answered 503 every
    time (each answer as late as NICO_REDFISH_TIMEOUT, each Retry-After capped), and a
    reset fallback waiting NICO_REDFISH_POWER_WAIT for Off plus its requests."""
    defaults = Settings.model_fields
    request = defaults["redfish_timeout"].default
    busy_post = (BUSY_RETRIES + 1) * request + BUSY_RETRIES * MAX_RETRY_AFTER_SECONDS
    fallback = defaults["redfish_power_wait"].default + 2 * request
    calls = [
        action
        for rule in BUILTIN_RULES.values()
        for step in rule.definition.steps
        for action in step.actions()
        if action.name in (ActionName.POWER_CONTROL, ActionName.FIRMWARE_CONTROL)
    ]
    assert calls
    for action in calls:
        assert attempt_deadline(attempt_timeout(action)) > max(busy_post, fallback), action
