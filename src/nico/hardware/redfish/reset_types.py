"""Which Redfish `ResetType`s carry out each power code, with bounded fallbacks.

A BMC lists the reset types it accepts in `ResetType@Redfish.AllowableValues`. For each
code we try the preferred plan first and fall back to the next plan whose every reset
type the BMC offers; when none fits we refuse before sending anything. docs/redfish.md
shows this table to operators.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from nico.domain import POWER_CODES, PowerState
from nico.hardware.interface import UnsupportedOperation


@dataclass(frozen=True, slots=True)
class SendReset:
    """POST the Reset action with this ResetType."""

    reset_type: str


@dataclass(frozen=True, slots=True)
class WaitForPower:
    """Poll PowerState until it reads `state` (bounded by NICO_REDFISH_POWER_WAIT)."""

    state: PowerState


PlanStep = SendReset | WaitForPower


@dataclass(frozen=True, slots=True)
class ResetPlan:
    """The steps that carry out one power code on one BMC."""

    code: str
    steps: tuple[PlanStep, ...]

    @property
    def reset_types(self) -> tuple[str, ...]:
        return tuple(s.reset_type for s in self.steps if isinstance(s, SendReset))

    @property
    def is_fallback(self) -> bool:
        return self != RESET_PLANS[self.code][0]

    def describe(self) -> str:
        """`ForceOff, wait until Off, On` — how the plan reads in docs and messages."""
        parts = [
            s.reset_type if isinstance(s, SendReset) else f"wait until {s.state.value}"
            for s in self.steps
        ]
        return ", ".join(parts)


def _plan(code: str, *steps: PlanStep) -> ResetPlan:
    return ResetPlan(code, steps)


_OFF_THEN_ON = (SendReset("ForceOff"), WaitForPower(PowerState.OFF), SendReset("On"))
_GRACEFUL_OFF_THEN_ON = (
    SendReset("GracefulShutdown"),
    WaitForPower(PowerState.OFF),
    SendReset("On"),
)

# Preferred plan first. Graceful codes never escalate to a forced reset type: an
# operator who asked for a graceful shutdown must not get a hard power cut.
RESET_PLANS: dict[str, tuple[ResetPlan, ...]] = {
    "power_on": (_plan("power_on", SendReset("On")), _plan("power_on", SendReset("ForceOn"))),
    "force_power_on": (
        _plan("force_power_on", SendReset("ForceOn")),
        _plan("force_power_on", SendReset("On")),
    ),
    "power_off": (_plan("power_off", SendReset("GracefulShutdown")),),
    "force_power_off": (_plan("force_power_off", SendReset("ForceOff")),),
    "restart": (
        _plan("restart", SendReset("GracefulRestart")),
        _plan("restart", *_GRACEFUL_OFF_THEN_ON),
    ),
    "force_restart": (
        _plan("force_restart", SendReset("ForceRestart")),
        _plan("force_restart", *_OFF_THEN_ON),
    ),
    # A warm reset keeps power applied: an OS restart, else a forced (still warm) reset.
    "warm_reset": (
        _plan("warm_reset", SendReset("GracefulRestart")),
        _plan("warm_reset", SendReset("ForceRestart")),
    ),
    # A cold reset removes power: PowerCycle, else ForceOff, wait until Off, On.
    "cold_reset": (
        _plan("cold_reset", SendReset("PowerCycle")),
        _plan("cold_reset", *_OFF_THEN_ON),
    ),
    # An AC power cycle, sent to a power shelf's Chassis: PowerCycle (the shelf removes
    # and restores the power it feeds), else FullPowerCycle (Redfish's "like removing AC
    # power"), else ForceOff, wait until Off, On. Never to a system (a system's PowerCycle
    # keeps its AC input).
    "ac_power_cycle": (
        _plan("ac_power_cycle", SendReset("PowerCycle")),
        _plan("ac_power_cycle", SendReset("FullPowerCycle")),
        _plan("ac_power_cycle", *_OFF_THEN_ON),
    ),
}

assert set(RESET_PLANS) == set(POWER_CODES)

# The steady state a code leaves the tray in, when asking again is a no-op.
SETTLED_STATE: dict[str, PowerState] = {
    "power_on": PowerState.ON,
    "force_power_on": PowerState.ON,
    "power_off": PowerState.OFF,
    "force_power_off": PowerState.OFF,
}


def choose_reset_plan(code: str, allowed: Collection[str] | None) -> ResetPlan:
    """The first plan for `code` whose reset types the BMC allows.

    `allowed` is the BMC's `ResetType@Redfish.AllowableValues`; None means the BMC does
    not say, and then the preferred plan is used and the BMC has the last word.
    """
    plans = RESET_PLANS.get(code)
    if plans is None:
        raise UnsupportedOperation(
            f"unknown power operation {code!r}: must be one of [{' '.join(POWER_CODES)}]"
        )
    if allowed is None:
        return plans[0]
    offered = set(allowed)
    for plan in plans:
        if offered.issuperset(plan.reset_types):
            return plan
    wanted = " or ".join(f"[{p.describe()}]" for p in plans)
    offered_text = ", ".join(sorted(offered)) or "none"
    raise UnsupportedOperation(
        f"power operation {code} needs ResetType {wanted}, but the BMC only allows: {offered_text}"
    )
