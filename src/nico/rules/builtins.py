"""Built-in rules for every operation code: installed as each site's defaults and kept
here as the final fallback of resolution.

Shapes follow upstream's hardcoded rules, adapted: verification waits at least 3 minutes,
warm/cold reset get real rules, firmware verifies the version, bring-up ingests, powers
shelves, then switches, then opens the compute gate and waits for bring-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nico.domain import OPERATION_CODES, OperationType
from nico.rules.model import RuleDefinition

SHELF, SWITCH, COMPUTE = "PowerShelf", "NVLSwitch", "Compute"
ALL_TYPES = (SHELF, SWITCH, COMPUTE)

Wire = dict[str, Any]


def _retry(attempts: int, initial: str, backoff: float, cap: str = "1m") -> Wire:
    return {
        "maxAttempts": attempts,
        "initialInterval": initial,
        "backoffCoefficient": backoff,
        "maxInterval": cap,
    }


RETRY_SHELF = _retry(3, "5s", 2)
RETRY_SWITCH = _retry(3, "5s", 2)
RETRY_COMPUTE = _retry(3, "1s", 2)
RETRY_VERIFY = _retry(2, "5s", 1.5, "10s")
RETRY_BY_TYPE = {SHELF: RETRY_SHELF, SWITCH: RETRY_SWITCH, COMPUTE: RETRY_COMPUTE}
TIMEOUT_BY_TYPE = {SHELF: "25m", SWITCH: "20m", COMPUTE: "20m"}

# One PowerControl / FirmwareControl start attempt outlasts one Redfish request's worst
# case at the defaults (a POST answered 503 three times: 4 x NICO_REDFISH_TIMEOUT 30s +
# 3 x 30s Retry-After = 3.5m) and a reset fallback's wait for Off (NICO_REDFISH_POWER_WAIT
# 2m) with its requests. A slower call is cut by the engine at the attempt's deadline,
# and a retry never sends a cycle twice (docs/engine.md).
HARDWARE_CALL_TIMEOUT = "4m"

# The longest wait between two checks of a state. Polls cost no workflow history (they
# run inside the step's activity) and start at 50 ms, backing off toward this, so a tray
# that settles in 0.5 s is seen then; the ceiling only bounds how late a slow change is
# noticed, and how often a BMC is asked. Firmware and bring-up take minutes: 5s.
POLL = "2s"
FIRMWARE_POLL = "5s"


def power(operation: str | None = None) -> Wire:
    # A BMC usually answers a reset in seconds; the state change is what verify waits for.
    action: Wire = {"name": "PowerControl", "timeout": HARDWARE_CALL_TIMEOUT}
    if operation is not None:
        action["parameters"] = {"operation": operation}
    return action


def verify_power(status: str, timeout: str = "5m", poll: str = POLL) -> Wire:
    return {
        "name": "VerifyPowerStatus",
        "timeout": timeout,
        "pollInterval": poll,
        "parameters": {"expected_status": status},
    }


def sleep(duration: str) -> Wire:
    return {"name": "Sleep", "parameters": {"duration": duration}}


def reachable(types: list[str], timeout: str = "5m", poll: str = POLL) -> Wire:
    return {
        "name": "VerifyReachability",
        "timeout": timeout,
        "pollInterval": poll,
        "parameters": {"component_types": types, "require_all": False},
    }


def step(
    component: str,
    stage: int,
    main: Wire,
    *,
    pre: list[Wire] | None = None,
    post: list[Wire] | None = None,
    timeout: str | None = None,
    retry: Wire | None = None,
    max_parallel: int = 0,
) -> Wire:
    out: Wire = {
        "componentType": component,
        "stage": stage,
        "maxParallel": max_parallel,
        "timeout": timeout or TIMEOUT_BY_TYPE[component],
        "retry": retry or RETRY_BY_TYPE[component],
        "mainOperation": main,
    }
    if pre:
        out["preOperation"] = pre
    if post:
        out["postOperation"] = post
    return out


def _graceful(order: tuple[str, ...], status: str, first_stage: int, op: str | None) -> list[Wire]:
    """One stage per type: PowerControl then wait for the state (shelves also wait for
    the BMCs they feed before the next stage starts)."""
    steps = []
    for offset, component in enumerate(order):
        post = [verify_power(status)]
        if component == SHELF and status == "on":
            post.append(reachable([SWITCH, COMPUTE]))
        steps.append(step(component, first_stage + offset, power(op), post=post))
    return steps


def _forced(
    order: tuple[str, ...], status: str, first_stage: int, op: str | None, settle: dict[str, str]
) -> list[Wire]:
    """Commands back to back (short settle sleeps), then one parallel verification stage."""
    steps = [
        step(component, first_stage + offset, power(op), post=[sleep(settle[component])])
        for offset, component in enumerate(order)
    ]
    verify_stage = first_stage + len(order)
    steps += [
        step(
            component,
            verify_stage,
            verify_power(status, "3m", "5s"),
            timeout="4m",
            retry=RETRY_VERIFY,
        )
        for component in ALL_TYPES
    ]
    return steps


UP = (SHELF, SWITCH, COMPUTE)
DOWN = (COMPUTE, SWITCH, SHELF)
FORCE_ON_SETTLE = {SHELF: "10s", SWITCH: "15s", COMPUTE: "10s"}
FORCE_OFF_SETTLE = {COMPUTE: "10s", SWITCH: "5s", SHELF: "5s"}


def _reset_steps() -> list[Wire]:
    """Switches first so compute comes back to a ready fabric; shelves keep power."""
    return [
        step(SWITCH, 1, power(), post=[verify_power("on", "10m")], timeout="25m"),
        step(COMPUTE, 2, power(), post=[verify_power("on", "10m")], timeout="25m"),
    ]


# An AC power cycle's PowerControl also waits (up to 3m) for every tray behind the shelf
# to show its own cycle (nico.engine.hardware_ops), on top of one hardware call.
AC_CYCLE_CALL_TIMEOUT = "8m"


def _ac_power_cycle_steps() -> list[Wire]:
    """Shelves cut and restore AC (the PowerControl verifies the shelf and every tray
    behind it cycled, by their reset markers), wait for power and the BMCs they feed;
    then every switch and compute tray must read On again."""
    action = {"name": "PowerControl", "timeout": AC_CYCLE_CALL_TIMEOUT}
    return [
        step(
            SHELF,
            1,
            action,
            post=[verify_power("on"), reachable([SWITCH, COMPUTE], "10m")],
            timeout="45m",
        ),
        *(
            step(component, 2, verify_power("on", "10m"), timeout="25m", retry=RETRY_VERIFY)
            for component in (SWITCH, COMPUTE)
        ),
    ]


def _firmware(verify: Wire) -> list[Wire]:
    firmware = {
        "name": "FirmwareControl",
        "timeout": HARDWARE_CALL_TIMEOUT,
        "parameters": {"poll_interval": FIRMWARE_POLL, "poll_timeout": "45m"},
    }
    retry = _retry(2, "30s", 1.5, "2m")
    return [
        step(component, 1, firmware, post=[verify], timeout="60m", retry=retry)
        for component in (COMPUTE, SWITCH)
    ]


def _bring_up() -> list[Wire]:
    retry = _retry(3, "10s", 2)
    inject = {"name": "InjectExpectation", "timeout": "2m"}
    steps = [step(component, 1, inject, timeout="10m", retry=retry) for component in ALL_TYPES]
    steps += [
        step(
            SHELF,
            2,
            power("power_on"),
            post=[verify_power("on"), reachable([SWITCH, COMPUTE], "10m")],
            timeout="30m",
            retry=retry,
        ),
        step(
            SWITCH,
            3,
            power("power_on"),
            post=[verify_power("on"), {"name": "VerifyFirmwareConsistency", "timeout": "1m"}],
            timeout="25m",
            retry=retry,
        ),
        step(
            COMPUTE,
            4,
            power("power_on"),
            pre=[{"name": "BringUpControl", "timeout": "1m"}],
            post=[
                {"name": "WaitBringUp", "timeout": "30m", "pollInterval": FIRMWARE_POLL},
                verify_power("on"),
            ],
            timeout="55m",
            retry=retry,
        ),
    ]
    return steps


@dataclass(frozen=True)
class BuiltinRule:
    """A code-defined rule: name and description as installed, and its definition."""

    operation_type: OperationType
    operation_code: str
    name: str
    description: str
    definition_wire: Wire

    @property
    def definition(self) -> RuleDefinition:
        return RuleDefinition.from_wire(self.definition_wire)


def _definition(steps: list[Wire]) -> Wire:
    return {"version": "v1", "steps": steps}


_P, _F, _B = OperationType.POWER_CONTROL, OperationType.FIRMWARE_CONTROL, OperationType.BRING_UP

BUILTIN_RULES: dict[tuple[OperationType, str], BuiltinRule] = {
    (rule.operation_type, rule.operation_code): rule
    for rule in (
        BuiltinRule(
            _P,
            "power_on",
            "Built-in graceful power on",
            "PowerShelf -> NVLSwitch -> Compute, each stage verified on before the next.",
            _definition(_graceful(UP, "on", 1, None)),
        ),
        BuiltinRule(
            _P,
            "power_off",
            "Built-in graceful power off",
            "Compute -> NVLSwitch -> PowerShelf, each stage verified off before the next.",
            _definition(_graceful(DOWN, "off", 1, None)),
        ),
        BuiltinRule(
            _P,
            "force_power_on",
            "Built-in force power on",
            "Force on shelves, switches, compute back to back; verify all on at the end.",
            _definition(_forced(UP, "on", 1, None, FORCE_ON_SETTLE)),
        ),
        BuiltinRule(
            _P,
            "force_power_off",
            "Built-in force power off",
            "Force off compute, switches, shelves back to back; verify all off at the end.",
            _definition(_forced(DOWN, "off", 1, None, FORCE_OFF_SETTLE)),
        ),
        BuiltinRule(
            _P,
            "restart",
            "Built-in graceful restart",
            "The graceful power-off sequence, then the graceful power-on sequence.",
            _definition(
                _graceful(DOWN, "off", 1, "power_off") + _graceful(UP, "on", 4, "power_on")
            ),
        ),
        BuiltinRule(
            _P,
            "force_restart",
            "Built-in force restart",
            "Force off (verified), then force on (verified).",
            _definition(
                _forced(DOWN, "off", 1, "force_power_off", FORCE_OFF_SETTLE)
                + _forced(UP, "on", 5, "force_power_on", FORCE_ON_SETTLE)
            ),
        ),
        BuiltinRule(
            _P,
            "warm_reset",
            "Built-in warm reset",
            "Reset NVLSwitch then Compute without removing power; verify each is on.",
            _definition(_reset_steps()),
        ),
        BuiltinRule(
            _P,
            "cold_reset",
            "Built-in cold reset",
            "Cold-reset NVLSwitch then Compute (shelves keep power); verify each is on.",
            _definition(_reset_steps()),
        ),
        BuiltinRule(
            _P,
            "ac_power_cycle",
            "Built-in AC power cycle",
            "PowerShelf cuts and restores AC; each shelf and every tray behind it must show "
            "a power cycle, then NVLSwitch and Compute must read On.",
            _definition(_ac_power_cycle_steps()),
        ),
        *(
            BuiltinRule(
                _F,
                code,
                f"Built-in firmware {code}",
                "Compute and NVLSwitch in parallel: start the update, poll it, verify "
                + ("the version." if code != "rollback" else "versions are consistent."),
                _definition(
                    _firmware(
                        {"name": "VerifyFirmwareVersion", "timeout": "1m"}
                        if code != "rollback"
                        else {"name": "VerifyFirmwareConsistency", "timeout": "1m"}
                    )
                ),
            )
            for code in OPERATION_CODES[_F]
        ),
        BuiltinRule(
            _B,
            "bring_up",
            "Built-in bring-up",
            "Ingest all trays, power shelves (wait for BMCs), switches (check firmware "
            "consistency), then open the compute gate, power on and wait for bring-up.",
            _definition(_bring_up()),
        ),
        BuiltinRule(
            _B,
            "ingest",
            "Built-in ingest",
            "Register every tray as expected inventory, all types in parallel.",
            _definition(
                [
                    step(
                        c,
                        1,
                        {"name": "InjectExpectation", "timeout": "2m"},
                        timeout="10m",
                        retry=RETRY_SHELF,
                    )
                    for c in ALL_TYPES
                ]
            ),
        ),
    )
}


def builtin_rule(operation_type: OperationType, operation_code: str) -> BuiltinRule:
    """The built-in rule of a code (every valid (type, code) has one)."""
    return BUILTIN_RULES[(operation_type, operation_code)]
