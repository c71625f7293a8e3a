"""The 11 rule actions as workflow code: each tray's pre/main/post actions call activities
(one tray per call) or loop with durable timers (polling actions).

Runs inside the workflow sandbox: deterministic, no I/O; everything else happens in
`nico.engine.activities`, called by name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from nico.domain import ComponentType, OperationType, PowerState, power_code
    from nico.engine import messages
    from nico.engine import payloads as p
    from nico.engine.contracts import TrayTarget
    from nico.engine.policy import (
        HEARTBEAT_TIMEOUT,
        POLL_ATTEMPT_TIMEOUT,
        PollDefaults,
        attempt_timeout,
        poll_bounds,
    )
    from nico.engine.retries import (
        INFRA,
        INFRA_ERROR_TYPE,
        WORKER_SILENT,
        hardware_retry_policy,
        is_infra_reason,
        retry_of,
    )
    from nico.hardware.interface import BringUpState, FirmwareJobState
    from nico.rules.durations import DurationError, format_seconds, parse_duration
    from nico.rules.model import ActionConfig, ActionName, RetryPolicy, SequenceStep

T = TypeVar("T")


class ActionFailed(Exception):
    """An action failed for a tray (or a step check failed); `reason` is operator text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CheckFailed(ActionFailed):
    """A check of *other* trays failed (a shelf's VerifyReachability of Compute): the tray
    that ran it did what it was asked and is not blamed; the step fails with the check."""


@dataclass
class StepContext:
    """What every action of one step needs: the step, its input and the task's trays."""

    input: p.StepInput
    step: SequenceStep
    # Per tray id: what an operator should know if the tray later fails (a power cycle
    # whose outcome was unknown and was not sent again).
    notes: dict[str, list[str]] = field(default_factory=dict)

    def note(self, tray: TrayTarget, text: str) -> None:
        self.notes.setdefault(tray.id, []).append(text)

    def ledger_key(self, tray: TrayTarget, slot: str) -> str:
        """Unique per task/stage/step/tray/action slot: a side effect is sent once."""
        i = self.input
        return f"{i.task_id}/stage-{i.stage}/step-{i.position}/{tray.id}/{slot}"

    def task_trays_of(self, component_type: ComponentType) -> list[TrayTarget]:
        return [t for t in self.input.task_trays if t.type == component_type.value]


# --- activity calls -----------------------------------------------------------------


def _attempt_of(cause: ApplicationError) -> int | None:
    """The attempt number an activity put in its failure's details."""
    if cause.details and isinstance(cause.details[0], int):
        return cause.details[0]
    return None


def _failure_text(exc: ActivityError, action: ActionName, max_attempts: int, used: int = 0) -> str:
    """The real cause of a failed activity, with which action and how often it was tried
    (`used`: hardware attempts of earlier calls cut short by an infrastructure outage)."""
    cause = exc.cause
    attempts = max_attempts
    if isinstance(cause, ApplicationError):
        reason = cause.message
        attempt = _attempt_of(cause)
        if attempt is not None:
            attempts = attempt + used
    elif isinstance(cause, TemporalTimeoutError):
        reason = "no answer in time"
    else:
        reason = str(cause or exc)
    return reason + messages.attempts_suffix(action.value, attempts)


async def call(
    ctx: StepContext, action: ActionConfig, name: str, arg: Any, result_type: type[T]
) -> T:
    """One action call: an activity bounded per attempt and retried per the step's retry.

    An attempt that could not reach nico's database or Temporal for as long as it could
    wait is not a hardware attempt: the call waits on the infrastructure budget
    (`nico.engine.retries.INFRA`) and is made again with the hardware attempts left."""
    retry = retry_of(ctx.step)
    used = 0  # hardware attempts spent by calls an outage cut short
    outages = 0
    outage_began: float | None = None
    while True:
        try:
            result: T = await workflow.execute_activity(
                name,
                arg,
                result_type=result_type,
                start_to_close_timeout=timedelta(seconds=attempt_timeout(action)),
                heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT),
                retry_policy=hardware_retry_policy(retry, used),
                # A cancel (task cancel, step timeout) waits until the call has stopped, so
                # nothing still talks to the hardware once the step reports.
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, TemporalCancelledError):
                raise asyncio.CancelledError() from exc
            spent = _lost_to_infrastructure(cause, retry, used)
            if spent is not None:
                now = workflow.time()
                outage_began = now if outage_began is None else outage_began
                if now - outage_began < INFRA.total:
                    used = spent
                    outages += 1
                    await workflow.sleep(INFRA.delay(outages, workflow.random().random()))
                    continue
            raise ActionFailed(_failure_text(exc, action.name, retry.max_attempts, used)) from exc
        return result


def _lost_to_infrastructure(
    cause: BaseException | None, retry: RetryPolicy, used: int
) -> int | None:
    """The hardware attempts spent when a call ended for nico's own reasons (then it is
    made again on the infrastructure budget), or None when the hardware's answer ended it.

    - `InfrastructureUnavailable`: the database or Temporal stayed down; the attempts
      before it count.
    - A Temporal timeout: every attempt ends itself before its start-to-close timeout
      (`AttemptExpired`, the BMC's silence), so a timeout means the worker died or was too
      starved to heartbeat. How many earlier attempts were the hardware's is not known, so
      at most one more attempt is granted: never more than `maxAttempts` hardware tries.
    """
    if isinstance(cause, ApplicationError) and cause.type == INFRA_ERROR_TYPE:
        return used + max((_attempt_of(cause) or 1) - 1, 0)
    if isinstance(cause, TemporalTimeoutError):
        return max(used, retry.max_attempts - 1) if retry.max_attempts > 0 else used
    return None


async def observe(name: str, arg: Any, result_type: type[T]) -> T | None:
    """One poll: a single attempt; a failed activity means "not yet" (None)."""
    try:
        result: T = await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=timedelta(seconds=POLL_ATTEMPT_TIMEOUT),
            heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT),
            retry_policy=TemporalRetryPolicy(maximum_attempts=1),
            # A cancel (task cancel, step timeout) waits until the call has stopped, so
            # nothing still talks to the hardware once the step reports.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
    except ActivityError as exc:
        if isinstance(exc.cause, TemporalCancelledError):
            raise asyncio.CancelledError() from exc
        return None
    return result


def not_read(obs: p.Observation | None, what: str) -> str:
    """Why a poll got no answer ("not yet"); raises ActionFailed at once when the backend
    says waiting cannot help (a tray or job that no longer exists, bad credentials)."""
    if obs is None:  # the poll activity itself failed: its worker died or was starved
        return WORKER_SILENT
    if not obs.error:
        return f"{what} not readable"
    if obs.infra:
        return obs.error
    if not obs.retryable:
        raise ActionFailed(f"{what} not readable: {obs.error}")
    return obs.error


async def poll(bounds: PollDefaults, probe: Callable[[], Awaitable[str | None]]) -> str | None:
    """Probe now, then every `interval` until it returns None (done) or `timeout` passes;
    returns the last reason it was not done yet, or None on success. Time lost to an
    outage of nico's database or Temporal (no BMC was asked) does not count against the
    timeout, up to the infrastructure budget."""
    deadline = workflow.time() + bounds.timeout
    excused = 0.0
    while True:
        began = workflow.time()
        reason = await probe()
        if reason is None:
            return None
        down = is_infra_reason(reason) and excused < INFRA.total
        remaining = deadline - workflow.time()
        if remaining <= 0 and not down:
            return reason
        await workflow.sleep(min(bounds.interval, remaining) if remaining > 0 else bounds.interval)
        if down:
            lost = min(workflow.time() - began, INFRA.total - excused)
            excused += lost
            deadline += lost


# --- parameters -------------------------------------------------------------------------


def target_version(info: Mapping[str, Any], component_type: str) -> str | None:
    """The task's requested firmware version for this type: a string, or a mapping keyed by
    component type (`{"compute": "2.1", "nvlswitch": "1.4"}`, any casing/alias)."""
    raw = info.get("version", info.get("targetVersion", info.get("target_version")))
    if isinstance(raw, str):
        return raw or None
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            try:
                matches = ComponentType.parse(key).value == component_type
            except ValueError:
                continue
            if matches and isinstance(value, str) and value:
                return value
    return None


def power_code_of(ctx: StepContext, action: ActionConfig) -> str:
    requested = action.parameters.get("operation")
    if requested:
        try:
            return power_code(str(requested))
        except ValueError as exc:
            raise ActionFailed(f"PowerControl: unrecognized operation {requested!r}") from exc
    if ctx.input.operation_type == OperationType.POWER_CONTROL.value:
        return ctx.input.operation_code
    raise ActionFailed(
        f"PowerControl needs parameters.operation in a {ctx.input.operation_type} task"
    )


def expected_power(action: ActionConfig) -> PowerState:
    raw = str(action.parameters.get("expected_status", "")).strip().lower()
    if raw == "on":
        return PowerState.ON
    if raw == "off":
        return PowerState.OFF
    raise ActionFailed(f"VerifyPowerStatus: expected_status must be on or off, not {raw!r}")


def sleep_seconds(action: ActionConfig) -> float:
    try:
        return max(parse_duration(action.parameters.get("duration")).seconds, 0.0)
    except DurationError as exc:
        raise ActionFailed(f"Sleep: {exc}") from exc


def firmware_operation(ctx: StepContext, action: ActionConfig) -> str:
    requested = action.parameters.get("operation")
    if isinstance(requested, str) and requested:
        return requested
    if ctx.input.operation_type == OperationType.FIRMWARE_CONTROL.value:
        return ctx.input.operation_code
    return "upgrade"


# --- per-tray actions -----------------------------------------------------------------

TrayAction = Callable[[StepContext, TrayTarget, str, ActionConfig], Awaitable[None]]


async def _sleep(ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig) -> None:
    seconds = sleep_seconds(action)
    if seconds > 0:
        await workflow.sleep(seconds)


async def _power_control(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    code = power_code_of(ctx, action)
    command = p.PowerCommand(ledger_key=ctx.ledger_key(tray, slot), tray_id=tray.id, code=code)
    result = await call(ctx, action, p.POWER_CONTROL, command, p.PowerResult)
    if result.outcome_unknown:
        # Sending a cycle again could cycle the tray twice: the verification that follows
        # decides, and a failure of this tray carries the note.
        workflow.logger.warning("tray %s: %s", tray.name, messages.outcome_unknown(code))
        ctx.note(tray, messages.outcome_unknown(code))


async def _verify_power_status(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    expected = expected_power(action)
    bounds = poll_bounds(action)
    seen: list[str] = []

    async def probe() -> str | None:
        obs = await observe(p.OBSERVE_POWER, p.TrayQuery(tray.id), p.Observation)
        if obs is None or obs.error:
            return not_read(obs, "power status")
        seen.append(obs.state or PowerState.UNKNOWN.value)
        return None if obs.state == expected.value else f"power state {obs.state}"

    reason = await poll(bounds, probe)
    if reason is None:
        return
    waited = format_seconds(bounds.timeout)
    if seen:
        raise ActionFailed(f"power state stayed {seen[-1]} after {waited} (expected {expected})")
    raise ActionFailed(f"power state not readable for {waited}: {reason}")


ReachGroups = list[tuple[ComponentType, list[TrayTarget]]]


def reachability_query(
    ctx: StepContext, tray: TrayTarget, action: ActionConfig
) -> tuple[ReachGroups, p.ReachabilityQuery]:
    """Which trays VerifyReachability asks about for `tray`, grouped by type: this tray for
    its own type, the task's targeted trays of every other listed type."""
    require_all = action.parameters.get("require_all", True) is not False
    own = ComponentType.parse(tray.type)
    groups: ReachGroups = []
    for raw in action.parameters.get("component_types") or [own.value]:
        kind = ComponentType.parse(raw)
        members = [tray] if kind is own else ctx.task_trays_of(kind)
        if members and all(kind is not g for g, _ in groups):
            groups.append((kind, members))
    query = p.ReachabilityQuery(
        [
            p.ReachGroup([t.id for t in members], kind is own or require_all)
            for kind, members in groups
        ]
    )
    return groups, query


class ReachabilityCheck:
    """One tray's VerifyReachability over the answers of its polls (pure, shared by the
    workflow code and the step runner). A failure blames this tray only when this tray
    did not answer; when only other trays did not, it is a CheckFailed (the tray did what
    it was asked)."""

    def __init__(self, ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig) -> None:
        self.groups, self.query = reachability_query(ctx, tray, action)
        self._ctx, self._tray, self._slot, self._action = ctx, tray, slot, action
        # Unanswered trays of the last poll: (tray, why).
        self._last: list[tuple[TrayTarget, str]] = []

    def failed(self, text: str) -> ActionFailed:
        if any(t.id == self._tray.id for t, _ in self._last):
            return ActionFailed(text)
        # Only other trays did not answer: this tray did what it was asked.
        kinds = sorted({t.type for t, _ in self._last})
        return CheckFailed(
            messages.cross_check_failed(
                self._action.name.value, kinds, _when(self._ctx, self._slot), text
            )
        )

    def judge(self, answers: list[list[p.Observation]]) -> str | None:
        """None when reachable enough; else what is missing ("not yet"). Raises when
        waiting cannot help."""
        outage = next((a.error for found in answers for a in found if a.infra), None)
        if outage:
            return outage
        last = self._last
        last.clear()
        hopeless: list[tuple[str, str]] = []
        for (_, members), group, found in zip(self.groups, self.query.groups, answers, strict=True):
            down = [(t, a) for t, a in zip(members, found, strict=True) if a.error]
            if group.need_all or not any(a.state == p.REACHABLE for a in found):
                last.extend((t, a.error or "") for t, a in down)
                # Waiting cannot help a tray whose answer refuses us; in a one-is-enough
                # group only when no other tray could still come up.
                fatal = [(t.name, a.error or "") for t, a in down if not a.retryable]
                if fatal and (group.need_all or len(fatal) == len(down)):
                    hopeless.extend(fatal)
        if hopeless:
            raise self.failed(f"not reachable: {messages.grouped(hopeless)}")
        return messages.grouped([(t.name, why) for t, why in last]) if last else None


async def _verify_reachability(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    check = ReachabilityCheck(ctx, tray, slot, action)
    bounds = poll_bounds(action)

    async def probe() -> str | None:
        answers = await observe(p.OBSERVE_REACHABILITY, check.query, list[list[p.Observation]])
        if answers is None:
            return WORKER_SILENT
        return check.judge(answers)

    reason = await poll(bounds, probe)
    if reason is not None:
        raise check.failed(f"not reachable after {format_seconds(bounds.timeout)}: {reason}")


def _when(ctx: StepContext, slot: str) -> str:
    """Where in the step a check ran: `after PowerShelf PowerControl`."""
    main = f"{ctx.step.component_type.value} {ctx.step.main_operation.name.value}"
    if slot.startswith("post"):
        return f"after {main}"
    if slot.startswith("pre"):
        return f"before {main}"
    return ""


async def _get_power_status(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    await call(ctx, action, p.POWER_STATUS, p.TrayQuery(tray.id), str)


def firmware_command(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> p.FirmwareCommand:
    return p.FirmwareCommand(
        ledger_key=ctx.ledger_key(tray, slot),
        tray_id=tray.id,
        operation=firmware_operation(ctx, action),
        version=target_version(ctx.input.info, tray.type),
        targets=[str(t) for t in ctx.input.info.get("targets") or ()],
    )


def judge_firmware(obs: p.Observation | None) -> str | None:
    """None when the update completed; else why not yet. Raises ActionFailed when it
    failed or waiting cannot help."""
    if obs is None or obs.error:
        return not_read(obs, "firmware status")
    if obs.state == FirmwareJobState.COMPLETED.value:
        return None
    if obs.state == FirmwareJobState.FAILED.value:
        raise ActionFailed(f"firmware update failed: {obs.detail or 'no detail from BMC'}")
    return f"firmware update {obs.state} at {obs.percent or 0}%"


async def _firmware_control(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    command = firmware_command(ctx, tray, slot, action)
    job_id = await call(ctx, action, p.FIRMWARE_START, command, str)
    bounds = poll_bounds(action)

    async def probe() -> str | None:
        obs = await observe(p.OBSERVE_FIRMWARE, p.FirmwareQuery(tray.id, job_id), p.Observation)
        return judge_firmware(obs)

    reason = await poll(bounds, probe)
    if reason is not None:
        raise ActionFailed(
            f"firmware update not finished after {format_seconds(bounds.timeout)}: {reason}"
        )


async def _verify_firmware_version(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    expected = action.parameters.get("expected_version") or target_version(
        ctx.input.info, tray.type
    )
    if not expected:
        raise ActionFailed(
            "VerifyFirmwareVersion: no expected_version given and the task requested no version"
        )
    versions = await call(ctx, action, p.FIRMWARE_VERSIONS, p.TraysQuery([tray.id]), list[str])
    if versions[0] != expected:
        raise ActionFailed(f"firmware version is {versions[0]}, expected {expected}")


async def _bring_up_control(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    await call(ctx, action, p.BRING_UP_CONTROL, p.TrayQuery(tray.id), type(None))


async def _wait_bring_up(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    bounds = poll_bounds(action)

    async def probe() -> str | None:
        obs = await observe(p.OBSERVE_BRING_UP, p.TrayQuery(tray.id), p.Observation)
        if obs is None or obs.error:
            return not_read(obs, "bring-up status")
        return None if obs.state == BringUpState.INGESTED.value else f"bring-up {obs.state}"

    reason = await poll(bounds, probe)
    if reason is not None:
        raise ActionFailed(f"not ingested after {format_seconds(bounds.timeout)}: {reason}")


async def _inject_expectation(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    await call(ctx, action, p.INJECT_EXPECTATION, p.TrayQuery(tray.id), type(None))


TRAY_ACTIONS: Mapping[ActionName, TrayAction] = {
    ActionName.SLEEP: _sleep,
    ActionName.POWER_CONTROL: _power_control,
    ActionName.VERIFY_POWER_STATUS: _verify_power_status,
    ActionName.VERIFY_REACHABILITY: _verify_reachability,
    ActionName.GET_POWER_STATUS: _get_power_status,
    ActionName.FIRMWARE_CONTROL: _firmware_control,
    ActionName.VERIFY_FIRMWARE_VERSION: _verify_firmware_version,
    ActionName.BRING_UP_CONTROL: _bring_up_control,
    ActionName.WAIT_BRING_UP: _wait_bring_up,
    ActionName.INJECT_EXPECTATION: _inject_expectation,
}


async def run_tray_action(
    ctx: StepContext, tray: TrayTarget, slot: str, action: ActionConfig
) -> None:
    """Run one per-tray action; raises ActionFailed with the reason on failure."""
    handler = TRAY_ACTIONS.get(action.name)
    if handler is None:
        raise ActionFailed(f"{action.name} cannot run per tray")
    await handler(ctx, tray, slot, action)


# --- step-scoped actions ----------------------------------------------------------------


async def verify_firmware_consistency(ctx: StepContext, action: ActionConfig) -> None:
    """All trays of the step report one firmware version."""
    trays = ctx.input.trays
    versions = await call(
        ctx, action, p.FIRMWARE_VERSIONS, p.TraysQuery([t.id for t in trays]), list[str]
    )
    judge_consistency(trays, versions)


def judge_consistency(trays: list[TrayTarget], versions: list[str]) -> None:
    """Raises ActionFailed naming the versions when the trays do not all report one."""
    by_version: dict[str, list[str]] = {}
    for tray, version in zip(trays, versions, strict=True):
        by_version.setdefault(version, []).append(tray.name)
    if len(by_version) > 1:
        parts = sorted(by_version.items(), key=lambda item: -len(item[1]))
        detail = "; ".join(f"{v} on {', '.join(names)}" for v, names in parts)
        raise ActionFailed(f"firmware versions differ: {detail}")


async def run_step_action(ctx: StepContext, action: ActionConfig) -> None:
    if action.name is ActionName.VERIFY_FIRMWARE_CONSISTENCY:
        await verify_firmware_consistency(ctx, action)
        return
    raise ActionFailed(f"{action.name} cannot run once per step")
