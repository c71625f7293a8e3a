"""Execution plans: stages -> steps -> trays, skipped steps and worst-case duration."""

from __future__ import annotations

import pytest

from nico.domain import ComponentType, OperationType
from nico.engine.plan import PlanTray, plan_rule
from nico.engine.policy import POLL_ATTEMPT_TIMEOUT, STEP_MARGIN, step_budget
from nico.rules.builtins import builtin_rule
from nico.rules.validation import validate_rule_definition
from tests.rules.support import RACK_SHAPE


def nvl72(shape: dict[str, int] | None = None) -> list[PlanTray]:
    trays = []
    for kind, count in (shape or RACK_SHAPE).items():
        for n in range(1, count + 1):
            trays.append(PlanTray(f"{kind}-{n}", f"{kind.lower()}-{n:02d}", ComponentType(kind)))
    return trays


def test_power_on_plan_for_a_full_rack() -> None:
    plan = plan_rule(builtin_rule(OperationType.POWER_CONTROL, "power_on").definition, nvl72())
    assert [s["stage"] for s in plan["stages"]] == [1, 2, 3]
    shelves = plan["stages"][0]["steps"][0]
    assert shelves["componentType"] == "PowerShelf"
    assert shelves["trayCount"] == 8 and shelves["trays"][0] == "powershelf-01"
    assert plan["skippedSteps"] == [] and plan["uncoveredComponentTypes"] == []
    # Per stage, one tray's worst case (all trays run at once): PowerControl 3 x 4m plus
    # backoff, then each verification's poll bound plus one last poll (the engine's
    # POLL_ATTEMPT_TIMEOUT); shelves also wait for the BMCs they feed.
    verify = 300 + POLL_ATTEMPT_TIMEOUT
    shelf, switch, compute = 735 + 2 * verify, 735 + verify, 723 + verify
    assert [s["steps"][0]["worstCaseSeconds"] for s in plan["stages"]] == [shelf, switch, compute]
    assert plan["worstCaseSeconds"] == pytest.approx(shelf + switch + compute)
    assert plan["worstCaseDuration"] == "1h33s"
    assert plan["stages"][0]["steps"][0]["capabilities"] == [
        "PowerControl",
        "PowerStatus",
        "Reachability",
    ]


def test_steps_without_targeted_trays_are_skipped() -> None:
    definition = builtin_rule(OperationType.POWER_CONTROL, "power_on").definition
    plan = plan_rule(definition, nvl72({"Compute": 2}))
    assert [s["componentType"] for s in plan["skippedSteps"]] == ["PowerShelf", "NVLSwitch"]
    assert plan["stages"][0]["status"] == "skipped"
    assert plan["stages"][2]["steps"][0]["trays"] == ["compute-01", "compute-02"]
    assert plan["worstCaseSeconds"] == pytest.approx(723 + 300 + POLL_ATTEMPT_TIMEOUT)


def test_worst_case_counts_batches_retries_and_backoff() -> None:
    definition = validate_rule_definition(
        {
            "version": "v1",
            "steps": [
                {
                    "componentType": "Compute",
                    "stage": 1,
                    "maxParallel": 4,
                    "retry": {"maxAttempts": 3, "initialInterval": "10s", "backoffCoefficient": 2},
                    "mainOperation": {"name": "PowerControl", "timeout": "1m"},
                    "postOperation": [
                        {"name": "Sleep", "parameters": {"duration": "30s"}},
                        {
                            "name": "VerifyPowerStatus",
                            "timeout": "3m",
                            "pollInterval": "5s",
                            "parameters": {"expected_status": "on"},
                        },
                    ],
                }
            ],
        },
        operation_type=OperationType.POWER_CONTROL,
        operation_code="power_on",
    )
    plan = plan_rule(definition, nvl72({"Compute": 18}))
    step = plan["stages"][0]["steps"][0]
    # One tray: 3 x 1m + (10s + 20s) backoff + 30s sleep + 3m poll and a last poll;
    # 18 trays by 4 = 5 batches.
    per_tray = 3 * 60 + 30 + 30 + 180 + POLL_ATTEMPT_TIMEOUT
    assert step["batches"] == 5
    assert step["worstCaseSeconds"] == pytest.approx(5 * per_tray)
    assert plan["warnings"] == []


def sleepy_step(timeout: str | None) -> dict[str, object]:
    """8 compute trays, 2 at a time, each sleeping 10s, then a 60s delayAfter."""
    step: dict[str, object] = {
        "componentType": "Compute",
        "stage": 1,
        "maxParallel": 2,
        "mainOperation": {"name": "Sleep", "parameters": {"duration": "10s"}},
        "delayAfter": "60s",
    }
    if timeout:
        step["timeout"] = timeout
    return step


def test_delay_after_counts_once_per_step_as_the_engine_sleeps_it() -> None:
    definition = validate_rule_definition(
        {"version": "v1", "steps": [sleepy_step("2m")]},
        operation_type=OperationType.POWER_CONTROL,
        operation_code="power_on",
    )
    plan = plan_rule(definition, nvl72({"Compute": 8}))
    step = plan["stages"][0]["steps"][0]
    # 4 waves of 10s, then one 60s delay: the step's 2m timeout covers it.
    assert (step["batches"], step["worstCaseSeconds"]) == (4, 100)
    assert plan["warnings"] == []
    # Without a timeout the engine allows exactly that worst case plus its margin.
    untimed = validate_rule_definition(
        {"version": "v1", "steps": [sleepy_step(None)]},
        operation_type=OperationType.POWER_CONTROL,
        operation_code="power_on",
    )
    assert step_budget(untimed.steps[0], 8) == 100 + STEP_MARGIN
    assert plan_rule(untimed, nvl72({"Compute": 8}))["worstCaseSeconds"] == 100


def test_a_step_timeout_too_short_for_one_tray_is_a_warning() -> None:
    definition = builtin_rule(OperationType.POWER_CONTROL, "power_on").definition
    wire = definition.to_wire()
    wire["steps"][2]["timeout"] = "1m"
    tight = validate_rule_definition(
        wire, operation_type=OperationType.POWER_CONTROL, operation_code="power_on"
    )
    plan = plan_rule(tight, nvl72())
    assert any("steps[2] (Compute, stage 3): timeout 1m" in w for w in plan["warnings"])


def test_trays_no_step_targets_are_reported() -> None:
    definition = builtin_rule(OperationType.FIRMWARE_CONTROL, "upgrade").definition
    plan = plan_rule(definition, nvl72())
    assert plan["uncoveredComponentTypes"] == ["PowerShelf"]
    assert any("PowerShelf" in w for w in plan["warnings"])


@pytest.mark.parametrize(
    ("operation_type", "code"),
    [(t, c) for t in OperationType for c in t.codes],
)
def test_builtin_rules_fit_their_own_timeouts_on_a_full_rack(
    operation_type: OperationType, code: str
) -> None:
    plan = plan_rule(builtin_rule(operation_type, code).definition, nvl72())
    timing = [w for w in plan["warnings"] if "timeout" in w]
    assert timing == []
