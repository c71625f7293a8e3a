"""Action -> hardware capability table and the pre-dispatch check built on it.

Before a task touches anything, every action of every targeted step is checked against
the capabilities of each targeted tray's backend, so a rule that needs something a
backend cannot do fails the task at once, naming the action, capability and backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from nico.domain import AC_POWER_CYCLE, ComponentType, OperationType, power_code
from nico.engine.contracts import TrayTarget
from nico.hardware.interface import Capability
from nico.rules.model import ActionConfig, ActionName, RuleDefinition

ACTION_CAPABILITIES: Mapping[ActionName, frozenset[Capability]] = {
    ActionName.SLEEP: frozenset(),
    ActionName.POWER_CONTROL: frozenset({Capability.POWER_CONTROL}),
    ActionName.VERIFY_POWER_STATUS: frozenset({Capability.POWER_STATUS}),
    ActionName.GET_POWER_STATUS: frozenset({Capability.POWER_STATUS}),
    ActionName.VERIFY_REACHABILITY: frozenset({Capability.REACHABILITY}),
    ActionName.FIRMWARE_CONTROL: frozenset(
        {Capability.FIRMWARE_CONTROL, Capability.FIRMWARE_STATUS}
    ),
    ActionName.VERIFY_FIRMWARE_VERSION: frozenset({Capability.FIRMWARE_VERSION}),
    # The engine compares the versions the trays report; reading them is all it needs.
    ActionName.VERIFY_FIRMWARE_CONSISTENCY: frozenset({Capability.FIRMWARE_VERSION}),
    ActionName.BRING_UP_CONTROL: frozenset({Capability.BRING_UP_CONTROL}),
    ActionName.WAIT_BRING_UP: frozenset({Capability.BRING_UP_STATUS}),
    ActionName.INJECT_EXPECTATION: frozenset({Capability.INJECT_EXPECTATION}),
}


@dataclass(frozen=True, slots=True)
class TargetTray:
    """What the check needs of a targeted tray."""

    name: str
    type: ComponentType
    backend: str


CapabilityLookup = Callable[[str, ComponentType], frozenset[Capability]]


def action_capabilities(
    action: ActionConfig, operation: tuple[str, str] | None = None
) -> frozenset[Capability]:
    """What one action needs. A PowerControl that runs `ac_power_cycle` (named in its
    parameters, or the task's own code when it names none) also needs AC_POWER_CYCLE.
    `operation` is the task's (operation type, code) when known."""
    needed = ACTION_CAPABILITIES[action.name]
    if action.name is not ActionName.POWER_CONTROL:
        return needed
    requested = action.parameters.get("operation")
    code: str | None = None
    if isinstance(requested, str) and requested:
        try:
            code = power_code(requested)
        except ValueError:
            code = None
    elif operation is not None and operation[0] == OperationType.POWER_CONTROL.value:
        code = operation[1]
    return needed | {Capability.AC_POWER_CYCLE} if code == AC_POWER_CYCLE else needed


def capability_gaps(
    rule: RuleDefinition,
    trays: Sequence[TargetTray],
    capabilities: CapabilityLookup,
    operation: tuple[str, str] | None = None,
) -> list[str]:
    """One line per (action, capability, backend, type) the targeted trays lack.
    `operation`: the task's (operation type, code), which a PowerControl without
    parameters runs."""
    by_type: dict[ComponentType, list[TargetTray]] = {}
    for tray in trays:
        by_type.setdefault(tray.type, []).append(tray)
    gaps: list[str] = []
    seen: set[tuple[str, str, str, str]] = set()

    def check(action: ActionConfig, trays_to_check: Sequence[TargetTray]) -> None:
        wanted = action_capabilities(action, operation)
        for tray in trays_to_check:
            have = capabilities(tray.backend, tray.type)
            for needed in sorted(wanted - have):
                key = (action.name.value, needed.value, tray.backend, tray.type.value)
                if key in seen:
                    continue
                seen.add(key)
                gaps.append(
                    f"{action.name.value} needs capability {needed.value}, which the "
                    f"{tray.backend} backend lacks for {tray.type.value} ({tray.name})"
                )

    for step in rule.steps:
        targeted = by_type.get(step.component_type, [])
        if not targeted:
            continue
        for action in step.actions():
            check(action, targeted)
            if action.name is ActionName.VERIFY_REACHABILITY:
                for raw in action.parameters.get("component_types") or ():
                    try:
                        other = ComponentType.parse(raw)
                    except ValueError:
                        continue
                    if other is not step.component_type:
                        check(action, by_type.get(other, []))
    return gaps


def uncovered_trays(rule: RuleDefinition, trays: Sequence[TrayTarget]) -> list[str]:
    """A task none of whose trays any rule step covers would "succeed" without touching
    anything; that is refused, naming what was targeted."""
    if not rule.steps:
        return ["rule definition has no steps"]
    covered = {s.component_type.value for s in rule.steps}
    if any(ComponentType.parse(t.type).value in covered for t in trays):
        return []
    kinds = sorted({ComponentType.parse(t.type).value for t in trays})
    return [
        f"the rule has no step for {', '.join(kinds) or 'any targeted tray'}, "
        "so this task would touch nothing"
    ]
