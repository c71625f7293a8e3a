"""Store rows -> the power read wire models: a tray's actual, desired and in-flight
power, and a rack's summaries over its trays (docs/state.md, "Power reads")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from nico.domain import OPERABLE_COMPONENT_TYPES, PowerState
from nico.schemas import power as wire
from nico.store.models import Tray
from nico.store.observations import TrayObserved
from nico.store.task_stats import TaskRow

UNSUPPORTED = "Unsupported"
_OPERABLE = frozenset(t.value for t in OPERABLE_COMPONENT_TYPES)
_OFF_CODES = frozenset({"power_off", "force_power_off"})
_TRANSITIONING = frozenset({PowerState.POWERING_ON.value, PowerState.POWERING_OFF.value})


def operable(tray: Tray) -> bool:
    return tray.type in _OPERABLE


def actual_power(tray: Tray, seen: TrayObserved | None) -> wire.ActualPower:
    """The last read: its state and time, its error, and the last good value while
    reads fail."""
    if not operable(tray):
        return wire.ActualPower(state=UNSUPPORTED, observed_at=None, error=None, last_good=None)
    if seen is None or (seen.power_state is None and seen.power_error is None):
        # Never read (or only its firmware was): unknown, not an undated old value that
        # the rack summary would count as a fact (docs/state.md, "Power reads").
        return wire.ActualPower(
            state=PowerState.UNKNOWN.value, observed_at=None, error=None, last_good=None
        )
    if seen.power_error is not None:
        last_good = None
        if seen.power_state is not None and seen.power_observed_at is not None:
            last_good = wire.LastGoodPower(
                state=seen.power_state, observed_at=seen.power_observed_at
            )
        return wire.ActualPower(
            state=PowerState.UNKNOWN.value,
            observed_at=seen.power_error_at,
            error=seen.power_error,
            last_good=last_good,
        )
    return wire.ActualPower(
        state=seen.power_state or PowerState.UNKNOWN.value,
        observed_at=seen.power_observed_at,
        error=None,
        last_good=None,
    )


def desired_state(code: str) -> str:
    """Where a power code leaves the tray: off codes Off; on codes and cycles On."""
    return "Off" if code in _OFF_CODES else "On"


def desired_power(tray: Tray, task: TaskRow | None) -> wire.DesiredPower:
    if task is None or not operable(tray):
        return wire.DesiredPower(
            state=None, requested=None, task_id=None, task_status=None, requested_at=None
        )
    return wire.DesiredPower(
        state="Off" if desired_state(task.operation_code) == "Off" else "On",
        requested=_requested(task),
        task_id=task.id,
        task_status=task.status,
        requested_at=task.created,
    )


def _requested(task: TaskRow) -> str | None:
    state = task.information.get("state") if isinstance(task.information, dict) else None
    return str(state) if state is not None else None


def power_task(task: TaskRow) -> wire.PowerTask:
    return wire.PowerTask(
        id=task.id,
        status=task.status,
        operation_code=task.operation_code,
        requested=_requested(task),
        created=task.created,
        started=task.started,
    )


def tray_power(
    tray: Tray,
    seen: TrayObserved | None,
    last_task: TaskRow | None,
    open_tasks: Sequence[TaskRow],
) -> wire.TrayPower:
    return wire.TrayPower(
        id=tray.id,
        name=tray.name,
        type=tray.type,
        rack_id=tray.rack_id,
        actual=actual_power(tray, seen),
        desired=desired_power(tray, last_task),
        tasks=[power_task(t) for t in open_tasks if t.targets_tray(tray.id)],
    )


def _summary_state(on: int, off: int, undecided: int) -> wire.SummaryState:
    if on and off:
        return "Mixed"
    if undecided or not (on or off):
        return "Unknown"
    return "On" if on else "Off"


def actual_summary(components: Sequence[wire.TrayPower]) -> wire.ActualSummary:
    counts = Counter(c.actual.state for c in components)
    on, off = counts["On"], counts["Off"]
    transitioning = sum(counts[s] for s in _TRANSITIONING)
    unsupported = counts[UNSUPPORTED]
    unknown = len(components) - on - off - transitioning - unsupported
    return wire.ActualSummary(
        state=_summary_state(on, off, transitioning + unknown),
        complete=transitioning + unknown == 0,
        coverage=wire.ActualCoverage(
            total=len(components),
            on=on,
            off=off,
            transitioning=transitioning,
            unknown=unknown,
            unsupported=unsupported,
        ),
    )


def desired_summary(components: Sequence[wire.TrayPower]) -> wire.DesiredSummary:
    unsupported = sum(c.actual.state == UNSUPPORTED for c in components)
    on = sum(c.desired.state == "On" for c in components)
    off = sum(c.desired.state == "Off" for c in components)
    unset = len(components) - unsupported - on - off
    return wire.DesiredSummary(
        state=_summary_state(on, off, 0),
        complete=unset == 0,
        coverage=wire.DesiredCoverage(
            total=len(components), on=on, off=off, unset=unset, unsupported=unsupported
        ),
    )
