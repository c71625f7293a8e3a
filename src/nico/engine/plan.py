"""Execution plan of a rule for a set of trays: what runs when, what is skipped, what
each step needs of the hardware, and how long it can take at worst.

Worst cases come only from the engine's own budget functions (`nico.engine.policy`:
attempt timeouts, retry, poll bounds, waves of `maxParallel`, `delayAfter` once per
step), so the plan says what the engine will allow. Pure, so the validate endpoint and
tests share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nico.domain import ComponentType
from nico.engine.capabilities import action_capabilities
from nico.engine.policy import step_worst_case, tray_seconds, waves
from nico.rules.durations import format_seconds
from nico.rules.model import RuleDefinition, SequenceStep


@dataclass(frozen=True)
class PlanTray:
    id: str
    name: str
    type: ComponentType


def capabilities_of(step: SequenceStep) -> list[str]:
    """Hardware capabilities the step's actions need of each targeted tray's backend."""
    needed = {c.value for a in step.actions() for c in action_capabilities(a)}
    return sorted(needed)


def _step_plan(
    index: int, step: SequenceStep, trays: list[PlanTray], warnings: list[str]
) -> dict[str, Any]:
    per_tray = tray_seconds(step)
    batches = waves(step, len(trays))
    worst = step_worst_case(step, len(trays))
    where = f"steps[{index}] ({step.component_type.value}, stage {step.stage})"
    if step.timeout is not None:
        if step.timeout.seconds < per_tray:
            warnings.append(
                f"{where}: timeout {step.timeout.text} is shorter than one tray's worst case "
                f"{format_seconds(per_tray)}; a slow tray fails the step"
            )
        elif step.timeout.seconds < worst:
            warnings.append(
                f"{where}: timeout {step.timeout.text} cannot cover {batches} batches of "
                f"maxParallel {step.max_parallel} at worst ({format_seconds(worst)})"
            )
        worst = min(worst, step.timeout.seconds)
    return {
        "stepIndex": index,
        "componentType": step.component_type.value,
        "status": "planned",
        "trays": [t.name for t in trays],
        "trayCount": len(trays),
        "maxParallel": step.max_parallel,
        "batches": batches,
        "actions": [a.name.value for a in step.actions()],
        "capabilities": capabilities_of(step),
        "worstCaseDuration": format_seconds(worst),
        "worstCaseSeconds": worst,
    }


def plan_rule(definition: RuleDefinition, trays: Sequence[PlanTray]) -> dict[str, Any]:
    """Stages -> steps -> targeted trays (by name), skipped steps, worst-case duration."""
    by_type: dict[ComponentType, list[PlanTray]] = {}
    for tray in sorted(trays, key=lambda t: t.name):
        by_type.setdefault(tray.type, []).append(tray)
    warnings: list[str] = []
    stages: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    total = 0.0
    for stage in definition.stages():
        steps: list[dict[str, Any]] = []
        for index, step in stage.steps:
            targeted = by_type.get(step.component_type, [])
            if not targeted:
                reason = f"no {step.component_type.value} trays are targeted"
                skipped.append(
                    {
                        "stepIndex": index,
                        "stage": stage.number,
                        "componentType": step.component_type.value,
                        "reason": reason,
                    }
                )
                steps.append(
                    {
                        "stepIndex": index,
                        "componentType": step.component_type.value,
                        "status": "skipped",
                        "trays": [],
                        "trayCount": 0,
                        "reason": reason,
                    }
                )
                continue
            steps.append(_step_plan(index, step, targeted, warnings))
        stage_worst = max((s.get("worstCaseSeconds", 0.0) for s in steps), default=0.0)
        total += stage_worst
        stages.append(
            {
                "stage": stage.number,
                "status": "planned" if any(s["status"] == "planned" for s in steps) else "skipped",
                "worstCaseDuration": format_seconds(stage_worst),
                "steps": steps,
            }
        )
    covered = {s.component_type for s in definition.steps}
    uncovered = sorted(t.value for t in by_type if t not in covered)
    if uncovered:
        warnings.append(f"no step targets {', '.join(uncovered)}: those trays would not be touched")
    return {
        "stages": stages,
        "skippedSteps": skipped,
        "uncoveredComponentTypes": uncovered,
        "trayCount": len(trays),
        "worstCaseDuration": format_seconds(total),
        "worstCaseSeconds": total,
        "warnings": warnings,
    }
