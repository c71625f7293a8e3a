"""Operator-facing texts of the engine: step failures name the trays and why (pure).

The report caps every error at 512 bytes, so the tray list comes first and is cut, never
the count: "2 of 18 Compute failed: compute-03: BMC unreachable; compute-07: ...".
"""

from __future__ import annotations

from collections.abc import Sequence

from nico.rules.durations import format_seconds

# How many unfinished tray names a timeout message lists before "and N more".
_MAX_NAMES = 8


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES])
    if len(names) > _MAX_NAMES:
        shown += f" and {len(names) - _MAX_NAMES} more"
    return shown


def grouped(failures: Sequence[tuple[str, str]]) -> str:
    """`compute-01, compute-02: BMC unreachable; compute-07: ...` (names sharing a reason
    share an entry, at most a few names each)."""
    by_reason: dict[str, list[str]] = {}
    for name, reason in failures:
        by_reason.setdefault(reason, []).append(name)
    return "; ".join(f"{_names(names)}: {reason}" for reason, names in by_reason.items())


def cross_check_failed(check: str, checked_types: Sequence[str], when: str, detail: str) -> str:
    """A check of *other* trays run from a step (the shelves' VerifyReachability of
    Compute): it names the check and what it found, never the trays that ran it, which
    did what they were asked. `VerifyReachability of Compute failed after PowerShelf
    PowerControl: not reachable after 5m: compute-01, compute-02: BMC unreachable`."""
    where = f" {when}" if when else ""
    return f"{check} of {', '.join(checked_types)} failed{where}: {detail}"


def step_failed(
    component_type: str,
    total: int,
    failures: Sequence[tuple[str, str]],
    *,
    not_started: int = 0,
) -> str:
    """`2 of 18 Compute failed: compute-03: BMC unreachable; ...; 8 not started`. Trays
    failing for the same reason share one entry (`compute-01, compute-02: ...`)."""
    head = f"{len(failures)} of {total} {component_type} failed"
    details = grouped(failures)
    text = f"{head}: {details}" if details else head
    if not_started:
        text += f"; {not_started} not started"
    return text


def step_timed_out(
    component_type: str,
    total: int,
    budget_seconds: float,
    unfinished: Sequence[str],
    failures: Sequence[tuple[str, str]],
    not_started: int,
) -> str:
    """`step timeout 2m exceeded: 3 of 18 Compute unfinished (compute-04, ...)`."""
    text = (
        f"step timeout {format_seconds(budget_seconds)} exceeded: "
        f"{len(unfinished) + not_started} of {total} {component_type} unfinished"
    )
    if unfinished:
        text += f" ({_names(unfinished)})"
    if failures:
        text += "; " + step_failed(component_type, total, failures)
    return text


def step_check_failed(component_type: str, reason: str) -> str:
    """A step-level check (e.g. firmware consistency) over all trays of the step."""
    return f"{component_type} check failed: {reason}"


def sibling_cancelled(failed_type: str) -> str:
    return f"cancelled: the {failed_type} step of this stage failed"


def running_message(
    stage_number: int, stage_index: int, stage_count: int, component_types: Sequence[str]
) -> str:
    """Short task message while a stage runs: `Running stage 2/3: NVLSwitch`; with gaps
    in the rule's stage numbers, the number the report shows comes first:
    `Running stage 5 (2/3): NVLSwitch`."""
    kinds = ", ".join(component_types) if component_types else "nothing targeted"
    place = f"{stage_index}/{stage_count}"
    if stage_number != stage_index:
        place = f"{stage_number} ({place})"
    return f"Running stage {place}: {kinds}"


def succeeded(*, skipped: int = 0) -> str:
    """`Succeeded`, or `Succeeded; 3 trays already ran the requested firmware version and
    were skipped`."""
    if not skipped:
        return "Succeeded"
    if skipped == 1:
        return "Succeeded; 1 tray already ran the requested firmware version and was skipped"
    return f"Succeeded; {skipped} trays already ran the requested firmware version and were skipped"


def stage_failed(number: int, error: str) -> str:
    return f"Stage {number} failed: {error}"


def task_over_budget(budget_seconds: float) -> str:
    return f"task exceeded its time budget of {format_seconds(budget_seconds)}"


def attempts_suffix(action: str, attempts: int) -> str:
    """` (PowerControl, 3 attempts)` — which action failed and how often it was tried."""
    if attempts > 1:
        return f" ({action}, {attempts} attempts)"
    return f" ({action})"


def outcome_unknown(code: str) -> str:
    """Why a power cycle was not sent again after an attempt that never got its answer
    (and the BMC exposes nothing that would tell whether it cycled)."""
    return (
        f"{code} outcome unknown: an earlier attempt was cut off before the BMC answered, "
        "so it was not sent again"
    )


def cycle_not_observed(code: str) -> str:
    """A cycle the BMC accepted while its reset marker (boot counter) did not move."""
    return f"BMC accepted {code} but the tray did not power-cycle"


def fed_trays_not_cycled(code: str, names: str) -> str:
    """A shelf's AC cycle was carried out, yet trays it feeds never showed a cycle."""
    return (
        f"the shelf carried out {code} but {names} did not power-cycle "
        "(their reset markers did not move); the shelf was not cycled again"
    )


def internal_error(exc: BaseException) -> str:
    """A bug or unreadable input in the engine's own code, as the task or step error."""
    return f"internal error: {type(exc).__name__}: {exc}"
