"""Engine defaults and time budgets derived from a rule (pure; workflows and the client use it).

An action call is one Temporal activity bounded per attempt and retried per the step's
`retry`; polling actions loop in the workflow until their own timeout; a step is bounded
by its `timeout` or, when absent, by the worst case its actions allow; a task by the sum
of its stages' budgets plus a margin. Every budget is finite and at most MAX_BUDGET, so
no rule (not even one stored before today's limits) can overflow a timeout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from nico.engine.retries import INFRA, retry_of
from nico.rules.durations import DurationError, parse_duration
from nico.rules.model import ActionConfig, ActionName, RuleDefinition, SequenceStep

# Retry budgets (hardware and infrastructure) live in `nico.engine.retries`.
# One attempt of a non-polling action when the action has no `timeout`.
DEFAULT_ATTEMPT_TIMEOUT = 120.0
# One poll (a single status read) of a polling action.
POLL_ATTEMPT_TIMEOUT = 60.0
# An activity that stops heartbeating for this long is presumed dead (worker crash) and
# retried elsewhere. Activities heartbeat every HEARTBEAT_EVERY seconds through their whole
# body, database work included, once they have run that long (quick ones never do); the
# server answers a heartbeat with "cancel requested",
# which is how a cancel reaches a call in flight (the SDK sends at most one heartbeat per
# 80% of the timeout, so within ~4s).
HEARTBEAT_TIMEOUT = 5.0
HEARTBEAT_EVERY = 1.0
# An activity attempt ends itself this long before its start-to-close timeout (at most
# this fraction of it), cancelling the hardware call in flight, so Temporal never starts
# a retry while the first attempt's request is still on the wire.
ATTEMPT_SLACK = 5.0
ATTEMPT_SLACK_FRACTION = 0.1
# Slack added to derived budgets (workflow task latency, report writes).
STEP_MARGIN = 60.0
TASK_MARGIN = 300.0
# Ceiling of every budget: 10 years, far beyond any real task (validated rules keep each
# duration within 7 days), and with execution_timeout's slack still well inside the
# 100 years Temporal accepts for a timeout.
MAX_BUDGET = 10 * 365 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class PollDefaults:
    timeout: float
    interval: float


POLL_DEFAULTS: Mapping[ActionName, PollDefaults] = {
    ActionName.VERIFY_POWER_STATUS: PollDefaults(timeout=180.0, interval=5.0),
    ActionName.VERIFY_REACHABILITY: PollDefaults(timeout=180.0, interval=5.0),
    ActionName.WAIT_BRING_UP: PollDefaults(timeout=900.0, interval=30.0),
    # FirmwareControl's progress poll (parameters poll_timeout / poll_interval).
    ActionName.FIRMWARE_CONTROL: PollDefaults(timeout=1800.0, interval=15.0),
}

# Actions evaluated once per step over all its trays rather than once per tray: a
# consistency check is only meaningful after every tray of the step has been updated.
STEP_SCOPED_ACTIONS: frozenset[ActionName] = frozenset({ActionName.VERIFY_FIRMWARE_CONSISTENCY})


def _seconds(value: object) -> float | None:
    """A duration parameter (`"30s"`) in seconds; None when absent or not a duration."""
    if isinstance(value, str) and value:
        try:
            return parse_duration(value).seconds
        except DurationError:
            return None
    return None


def bounded(seconds: float) -> float:
    """`seconds` within [0, MAX_BUDGET]; NaN counts as unbounded."""
    if not seconds <= MAX_BUDGET:
        return MAX_BUDGET
    return max(seconds, 0.0)


def poll_bounds(action: ActionConfig) -> PollDefaults:
    """Loop timeout and interval of a polling action (FirmwareControl: its progress poll).

    Polling actions use the action's `timeout`/`pollInterval`; FirmwareControl uses its
    `poll_timeout`/`poll_interval` parameters (its `timeout` bounds the start call), then
    `pollInterval`. Absent values take the defaults above.
    """
    defaults = POLL_DEFAULTS[action.name]
    if action.name is ActionName.FIRMWARE_CONTROL:
        timeout = _seconds(action.parameters.get("poll_timeout"))
        interval = _seconds(action.parameters.get("poll_interval"))
    else:
        timeout = action.timeout.seconds if action.timeout else None
        interval = None
    if interval is None and action.poll_interval is not None:
        interval = action.poll_interval.seconds
    timeout = timeout if timeout and timeout > 0 else defaults.timeout
    interval = interval if interval and interval > 0 else defaults.interval
    return PollDefaults(timeout=timeout, interval=min(interval, timeout))


def attempt_timeout(action: ActionConfig) -> float:
    """Bound of one attempt of a non-polling action call (for FirmwareControl: the start)."""
    if action.timeout is not None and action.timeout.seconds > 0 and not is_polling(action):
        return action.timeout.seconds
    return DEFAULT_ATTEMPT_TIMEOUT


def attempt_deadline(start_to_close: float) -> float:
    """Seconds an attempt with this start-to-close timeout gives its own work."""
    return start_to_close - min(ATTEMPT_SLACK, start_to_close * ATTEMPT_SLACK_FRACTION)


def is_polling(action: ActionConfig) -> bool:
    return action.name in (
        ActionName.VERIFY_POWER_STATUS,
        ActionName.VERIFY_REACHABILITY,
        ActionName.WAIT_BRING_UP,
    )


def action_budget(step: SequenceStep, action: ActionConfig) -> float:
    """Worst-case seconds one action takes for one tray."""
    retry = retry_of(step)
    try:
        called = attempt_timeout(action) * retry.max_attempts + retry.worst_case_backoff_seconds()
    except OverflowError:  # an attempt count beyond float range: an unchecked stored rule
        called = math.inf
    if action.name is ActionName.SLEEP:
        return bounded(_seconds(action.parameters.get("duration")) or 0.0)
    if is_polling(action):
        bounds = poll_bounds(action)
        return bounded(bounds.timeout + POLL_ATTEMPT_TIMEOUT)
    if action.name is ActionName.FIRMWARE_CONTROL:
        bounds = poll_bounds(action)
        return bounded(called + bounds.timeout + POLL_ATTEMPT_TIMEOUT)
    return bounded(called)


def tray_seconds(step: SequenceStep) -> float:
    """Worst case of one tray: its pre, main and post actions, retries included."""
    return bounded(
        sum(action_budget(step, a) for a in step.actions() if a.name not in STEP_SCOPED_ACTIONS)
    )


def waves(step: SequenceStep, tray_count: int) -> int:
    """How many rounds of at most `maxParallel` trays the step runs (0 = all at once)."""
    window = step.max_parallel or tray_count or 1
    return max(math.ceil(tray_count / window), 1)


def step_worst_case(step: SequenceStep, tray_count: int) -> float:
    """The longest the step's actions can take: every wave of trays, the step-scoped
    checks once, then `delayAfter` once (the engine sleeps it once per step)."""
    once = sum(action_budget(step, a) for a in step.actions() if a.name in STEP_SCOPED_ACTIONS)
    delay = step.delay_after.seconds if step.delay_after else 0.0
    return bounded(tray_seconds(step) * waves(step, tray_count) + once + delay)


def step_budget(step: SequenceStep, tray_count: int) -> float:
    """Seconds the step may take: its `timeout`, else its worst case plus a margin."""
    if step.timeout is not None and step.timeout.seconds > 0:
        return bounded(step.timeout.seconds)
    return bounded(step_worst_case(step, tray_count) + STEP_MARGIN)


def task_budget(rule: RuleDefinition, trays_by_type: Mapping[str, int]) -> float:
    """Seconds the whole task may run: stages in sequence, each as long as its longest step."""
    total = 0.0
    for stage in rule.stages():
        budgets = [
            step_budget(step, trays_by_type.get(step.component_type.value, 0))
            for _, step in stage.steps
            if trays_by_type.get(step.component_type.value, 0) > 0
        ]
        total += max(budgets, default=0.0)
    return bounded(total + TASK_MARGIN)


def outage_allowance(rule: RuleDefinition) -> float:
    """Seconds a task may run past its budget because its steps waited out outages of
    nico's own services: a step's time limit does not count that time, up to the
    infrastructure budget per step (docs/engine.md, "Infrastructure failures")."""
    return INFRA.total * len(rule.stages())


def execution_timeout(budget_seconds: float) -> timedelta:
    """Temporal's backstop for a workflow whose own deadline is `budget_seconds`: only hit
    when the workflow cannot even run its own timeout handling (the reconciler then fails
    the task). Bounded, so no budget can overflow it or exceed Temporal's limit."""
    return timedelta(seconds=bounded(budget_seconds) * 1.25 + 600.0)
