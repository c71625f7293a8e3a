"""Choosing reset types per power code from what a BMC allows (pure logic)."""

from __future__ import annotations

import pytest

from nico.domain import POWER_CODES
from nico.hardware.interface import UnsupportedOperation
from nico.hardware.redfish.reset_types import RESET_PLANS, choose_reset_plan

ALL_TYPES = [
    "On", "ForceOn", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart",
    "PowerCycle", "Nmi", "PushPowerButton",
]  # fmt: skip


def test_every_power_code_has_a_plan() -> None:
    assert set(RESET_PLANS) == set(POWER_CODES)


@pytest.mark.parametrize(
    ("code", "preferred"),
    [
        ("power_on", "On"),
        ("force_power_on", "ForceOn"),
        ("power_off", "GracefulShutdown"),
        ("force_power_off", "ForceOff"),
        ("restart", "GracefulRestart"),
        ("force_restart", "ForceRestart"),
        ("warm_reset", "GracefulRestart"),
        ("cold_reset", "PowerCycle"),
        ("ac_power_cycle", "PowerCycle"),
    ],
)
def test_a_bmc_offering_everything_gets_the_preferred_reset_type(code: str, preferred: str) -> None:
    plan = choose_reset_plan(code, ALL_TYPES)
    assert plan.describe() == preferred
    assert not plan.is_fallback
    # A BMC that lists nothing gets the preferred type too, and the last word.
    assert choose_reset_plan(code, None).describe() == preferred


@pytest.mark.parametrize(
    ("code", "allowed", "fallback"),
    [
        ("power_on", ["ForceOn", "ForceOff"], "ForceOn"),
        ("force_power_on", ["On", "ForceOff"], "On"),
        ("restart", ["On", "GracefulShutdown"], "GracefulShutdown, wait until Off, On"),
        ("force_restart", ["On", "ForceOff"], "ForceOff, wait until Off, On"),
        ("warm_reset", ["ForceRestart"], "ForceRestart"),
        ("cold_reset", ["On", "ForceOff", "ForceRestart"], "ForceOff, wait until Off, On"),
        ("ac_power_cycle", ["On", "ForceOff", "FullPowerCycle"], "FullPowerCycle"),
        ("ac_power_cycle", ["On", "ForceOff", "GracefulShutdown"], "ForceOff, wait until Off, On"),
    ],
)
def test_a_missing_reset_type_falls_back_to_the_documented_plan(
    code: str, allowed: list[str], fallback: str
) -> None:
    plan = choose_reset_plan(code, allowed)
    assert plan.describe() == fallback
    assert plan.is_fallback


@pytest.mark.parametrize(
    ("code", "allowed"),
    [
        # Graceful never turns into forced, and forced off has no substitute.
        ("power_off", ["On", "ForceOff"]),
        ("force_power_off", ["On", "GracefulShutdown"]),
        ("restart", ["On", "ForceOff", "ForceRestart"]),
        ("cold_reset", ["On", "GracefulShutdown"]),
        ("ac_power_cycle", ["On", "GracefulShutdown", "GracefulRestart"]),
        ("power_on", []),
    ],
)
def test_no_fitting_plan_is_refused_naming_what_was_needed(code: str, allowed: list[str]) -> None:
    with pytest.raises(UnsupportedOperation) as refused:
        choose_reset_plan(code, allowed)
    assert f"power operation {code} needs ResetType" in str(refused.value)
    assert refused.value.retryable is False


def test_an_unknown_code_is_refused() -> None:
    with pytest.raises(UnsupportedOperation, match="unknown power operation 'ac_cycle'"):
        choose_reset_plan("ac_cycle", ALL_TYPES)
