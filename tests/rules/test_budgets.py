"""Budgets from a rule are computed at once and always fit a Temporal timeout, whatever
the rule says (a rule stored before the validation limits is not re-checked)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from nico.engine.policy import MAX_BUDGET, execution_timeout, step_budget, task_budget
from nico.rules.durations import GoDuration
from nico.rules.model import RetryPolicy, RuleDefinition

TEMPORAL_LIMIT = timedelta(days=100 * 365)


def waits_one_by_one(retry: RetryPolicy) -> float:
    """The waits Temporal sleeps between attempts, added up one at a time."""
    total, interval = 0.0, retry.initial_interval.seconds
    cap = retry.max_interval.seconds if retry.max_interval else interval * 100
    for _ in range(retry.max_attempts - 1):
        total += min(interval, cap)
        interval *= retry.backoff_coefficient
    return total


def retry(attempts: int, initial: float, coefficient: float, cap: float | None) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=attempts,
        initial_interval=GoDuration(f"{initial}s", initial),
        backoff_coefficient=coefficient,
        max_interval=GoDuration(f"{cap}s", cap) if cap is not None else None,
    )


@pytest.mark.parametrize("attempts", [1, 2, 3, 7, 50, 100])
@pytest.mark.parametrize("coefficient", [1, 1.0001, 1.5, 2, 3.7, 10, 1e6])
@pytest.mark.parametrize(("initial", "cap"), [(1, None), (5, 60), (10, 10), (0.5, 604800)])
def test_backoff_sum_matches_the_waits_one_by_one(
    attempts: int, coefficient: float, initial: float, cap: float | None
) -> None:
    policy = retry(attempts, initial, coefficient, cap)
    assert policy.worst_case_backoff_seconds() == pytest.approx(waits_one_by_one(policy))


def test_backoff_of_a_huge_attempt_count_costs_no_loop() -> None:
    # A loop over the waits would never finish these (10**30 attempts).
    # 1 + 2 + 4 + 8 + 16, then every further wait at the 30s cap.
    assert retry(10**7, 1, 2, 30).worst_case_backoff_seconds() == 31 + (10**7 - 6) * 30
    assert retry(10**30, 1, 2, 30).worst_case_backoff_seconds() == pytest.approx(30e30)
    assert math.isinf(retry(10**400, 1, 2, 30).worst_case_backoff_seconds())


def unchecked_rule(**step: Any) -> RuleDefinition:
    """A definition read back from storage as-is, without today's validation."""
    return RuleDefinition.from_wire(
        {
            "version": "v1",
            "steps": [
                {
                    "componentType": "Compute",
                    "stage": 1,
                    "mainOperation": {"name": "PowerControl", "timeout": "1m"},
                }
                | step
            ],
        }
    )


@pytest.mark.parametrize(
    "step",
    [
        {"retry": {"maxAttempts": 10**7, "initialInterval": "1s", "backoffCoefficient": 2}},
        {"retry": {"maxAttempts": 10**30, "initialInterval": "1s", "backoffCoefficient": 2}},
        {"retry": {"maxAttempts": 10**400, "initialInterval": "1s", "backoffCoefficient": 2}},
        {"retry": {"maxAttempts": 3, "initialInterval": "9" * 400 + "h", "backoffCoefficient": 2}},
        {"timeout": "9" * 400 + "h"},
        {"timeout": "9999999999h"},
        {"delayAfter": "9" * 400 + "h"},
        {"mainOperation": {"name": "GetPowerStatus", "timeout": "9" * 400 + "h"}},
        {"mainOperation": {"name": "Sleep", "parameters": {"duration": "9" * 400 + "h"}}},
    ],
)
def test_budgets_of_absurd_stored_rules_stay_within_temporal_limits(step: dict[str, Any]) -> None:
    rule = unchecked_rule(**step)
    budget = task_budget(rule, {"Compute": 18})
    timeout = execution_timeout(budget)
    assert 0 < budget <= MAX_BUDGET
    assert 0 < step_budget(rule.steps[0], 18) <= MAX_BUDGET
    assert timeout < TEMPORAL_LIMIT


def test_execution_timeout_never_overflows() -> None:
    for budget in (math.inf, math.nan, 1e300, -5.0):
        assert timedelta(0) < execution_timeout(budget) < TEMPORAL_LIMIT
