"""One rule step run in-process: every targeted tray through pre -> main -> post, at most
`maxParallel` at a time, inside one heartbeating activity (`nico.engine.step_activity`).

Why in-process: each action call and each poll used to be an activity (and each poll
wait a timer) in the step's workflow history, so the history grew with the number of
polls and a long firmware update could pass Temporal's event limit; and every tray cost
several workflow tasks. Here a step costs a constant number of history events, polls
start at 50 ms and back off toward the rule's `pollInterval` (a tray that settles in
0.5 s is seen then), and per-action retries, timeouts, fail-fast and the ledger work as
before. Progress (per tray: how many of its actions are done, and its outcome) is what
the activity heartbeats, so an attempt retried after a worker crash resumes from it;
the operation ledger keeps a main action from being sent twice across that resume.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from nico.domain import PowerState
from nico.engine import infra, messages
from nico.engine import payloads as p
from nico.engine.actions import (
    ActionFailed,
    CheckFailed,
    ReachabilityCheck,
    StepContext,
    expected_power,
    firmware_command,
    firmware_operation,
    judge_consistency,
    judge_firmware,
    not_read,
    power_code_of,
    sleep_seconds,
    target_version,
)
from nico.engine.contracts import TrayTarget
from nico.engine.hardware_ops import (
    UNEXPECTED_ERROR,
    HardwareOps,
    error_text,
    failed_observation,
    outage_answers,
)
from nico.engine.infra import InfrastructureUnavailable
from nico.engine.policy import (
    POLL_ATTEMPT_TIMEOUT,
    STEP_SCOPED_ACTIONS,
    PollDefaults,
    attempt_timeout,
    poll_bounds,
)
from nico.engine.retries import INFRA, is_infra_reason, retry_of
from nico.engine.step_history import TrayEnd
from nico.hardware.interface import BringUpState, HardwareError
from nico.rules.durations import format_seconds
from nico.rules.model import ActionConfig, ActionName, SequenceStep
from nico.store.history import HistoryKind

T = TypeVar("T")
log = logging.getLogger(__name__)

# The first poll waits this long, each next wait is POLL_GROWTH times longer, up to the
# rule's pollInterval: fine-grained while a change is likely, then as the rule says.
FIRST_POLL = 0.05
POLL_GROWTH = 1.5

PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
# A firmware step's tray that already ran the requested version (docs/firmware.md).
SKIPPED = "skipped"
# The task info flag (upstream's `overrideVersionCheck`) that reflashes such trays.
OVERRIDE_VERSION_CHECK = "overrideVersionCheck"


@dataclass
class WaitClock:
    """How long the runner's deliberate waits really last: a Sleep action, the backoff
    between attempts, the waits between polls and a poll loop's timeout. 1.0 in
    production. The test suite shrinks them (tests/conftest.py), as the time-skipping
    server used to when these were workflow timers; attempt timeouts, the step's
    deadline and FIRST_POLL are never scaled."""

    scale: float = 1.0

    def span(self, seconds: float) -> float:
        return seconds * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.span(seconds))


WAITS = WaitClock()


@dataclass
class TrayProgress:
    """How far one tray got: actions done (`next_slot`), and its outcome once it has one.
    In a firmware step also the version read before it started and the last one read."""

    next_slot: int = 0
    status: str = PENDING
    reason: str = ""
    before: str | None = None
    after: str | None = None

    def to_wire(self) -> list[Any]:
        return [self.next_slot, self.status, self.reason, self.before, self.after]

    @classmethod
    def from_wire(cls, saved: list[Any]) -> TrayProgress:
        next_slot, status, reason, *versions = saved
        before, after = [*versions, None, None][:2]
        # A tray in flight when the attempt died runs again from its next action.
        status = PENDING if status == RUNNING else status
        return cls(int(next_slot), str(status), str(reason), before, after)


def _slots(step: SequenceStep) -> list[tuple[str, ActionConfig]]:
    """Per-tray actions in execution order with their ledger slot names (`pre0`, `main`)."""
    slots = [(f"pre{i}", a) for i, a in enumerate(step.pre_operation)]
    slots.append(("main", step.main_operation))
    slots += [(f"post{i}", a) for i, a in enumerate(step.post_operation)]
    return [(slot, a) for slot, a in slots if a.name not in STEP_SCOPED_ACTIONS]


class StepRunner:
    """Runs one step; `progress()` is what to heartbeat, `counts()` the live counts."""

    def __init__(
        self,
        ops: HardwareOps,
        data: p.StepInput,
        *,
        deadline: float,
        budget: float,
        resume: dict[str, Any] | None = None,
        outage_room: float = INFRA.total,
    ) -> None:
        self._ops = ops
        self._step = SequenceStep.from_wire(data.step)
        self._ctx = StepContext(input=data, step=self._step)
        self._trays = list(data.trays)
        self._deadline = deadline  # wall clock (epoch seconds) the step must end by
        self._budget = budget
        # How far outage time may push the deadline (what Temporal gives the activity).
        self._outage_room = outage_room
        self._per_tray = _slots(self._step)
        self._once = [a for a in self._step.actions() if a.name in STEP_SCOPED_ACTIONS]
        # A firmware step reads each tray's version first: a tray already at the requested
        # version is skipped unless the task says overrideVersionCheck.
        self._firmware_step = self._step.main_operation.name is ActionName.FIRMWARE_CONTROL
        self._override = data.info.get(OVERRIDE_VERSION_CHECK) is True
        self._state = {t.id: TrayProgress() for t in self._trays}
        self._peak = 0
        self._unfinished: list[str] = []
        # The first failed check of other trays (no tray of this step is blamed for it).
        self._check_failure: str | None = None
        # Outage time of this attempt's trays (set by `run`), and of earlier attempts.
        self._outage: infra.Outage | None = None
        self._excused_before = 0.0
        if resume:
            self._restore(resume)

    # --- progress ---------------------------------------------------------------------

    def excused(self) -> float:
        """Seconds added to the step's time limit: time its trays spent waiting out an
        outage of nico's own services (earlier attempts' included), within INFRA."""
        spent = self._outage.spent() if self._outage is not None else 0.0
        return min(self._excused_before + spent, INFRA.total, self._outage_room)

    def progress(self) -> dict[str, Any]:
        """JSON-safe progress for heartbeat details (see `_restore`)."""
        return {
            "peak": self._peak,
            "excused": round(self.excused(), 3),
            "trays": {i: s.to_wire() for i, s in self._state.items()},
        }

    def _restore(self, saved: dict[str, Any]) -> None:
        self._peak = int(saved.get("peak", 0))
        self._excused_before = float(saved.get("excused", 0.0))
        for tray_id, progress in dict(saved.get("trays", {})).items():
            if tray_id in self._state:
                self._state[tray_id] = TrayProgress.from_wire(list(progress))

    def counts(self) -> tuple[int, int]:
        """(completed, failed); skipped trays are neither."""
        states = self._state.values()
        return (
            sum(1 for s in states if s.status == COMPLETED),
            sum(1 for s in states if s.status == FAILED),
        )

    def skipped(self) -> int:
        return sum(1 for s in self._state.values() if s.status == SKIPPED)

    def outcomes(self) -> list[dict[str, Any]] | None:
        """Per tray of a firmware step: outcome and versions before and after (None for
        other steps)."""
        if not self._firmware_step:
            return None
        out = []
        for tray in self._trays:
            state = self._state[tray.id]
            entry: dict[str, Any] = {"trayId": tray.id, "name": tray.name, "outcome": state.status}
            if state.before is not None:
                entry["fromVersion"] = state.before
            if state.after is not None:
                entry["toVersion"] = state.after
            out.append(entry)
        return out

    # --- history (nico.engine.step_history) ----------------------------------------------

    def history(self) -> tuple[HistoryKind, str] | None:
        """(kind, operation) when this is a power or firmware step, which write history."""
        main = self._step.main_operation
        if main.name is ActionName.POWER_CONTROL:
            try:
                return HistoryKind.POWER, power_code_of(self._ctx, main)
            except ActionFailed:  # each tray fails saying why; the rows name the action
                return HistoryKind.POWER, main.name.value
        if main.name is ActionName.FIRMWARE_CONTROL:
            return HistoryKind.FIRMWARE, firmware_operation(self._ctx, main)
        return None

    def note_before(self, values: dict[str, str | None]) -> None:
        """Each tray's value before the step (a power step's shown power state), kept
        across attempts with the progress; a firmware step reads its own."""
        if self._firmware_step:
            return
        for tray_id, state in self._state.items():
            if state.before is None and state.status == PENDING and state.next_slot == 0:
                state.before = values.get(tray_id)

    def ends(self, after: dict[str, str | None]) -> list[TrayEnd]:
        """How each tray ended, with its value before and after (`after`: what the trays
        show now; a firmware step's own last read wins)."""
        out = []
        for tray in self._trays:
            state = self._state[tray.id]
            last = state.after if self._firmware_step and state.after else after.get(tray.id)
            out.append(TrayEnd(tray, state.status, state.reason, state.before, last))
        return out

    def _failures(self) -> list[tuple[str, str]]:
        return [(t.name, self._state[t.id].reason) for t in self._trays if self._failed(t)]

    def _stopping(self) -> bool:
        """Fail-fast: a tray failed, or a check of other trays did."""
        return bool(self._failures()) or self._check_failure is not None

    def _failed(self, tray: TrayTarget) -> bool:
        return self._state[tray.id].status == FAILED

    # --- the step ---------------------------------------------------------------------

    async def run(self) -> p.StepResult:
        """The step's outcome. A cancel stops every tray (no hardware call is left in
        flight when this returns) and answers `cancelled` — or `completed` when every
        tray had already finished. The step's timeout answers `failed`, naming what was
        left."""
        with infra.watching() as outage:  # the trays' tasks account in it
            self._outage = outage
            body = asyncio.create_task(self._execute())
        cancelled = timed_out = False
        try:
            # The step's time limit does not count time its trays spent waiting out an
            # outage of nico's own services (how long any of them was held up).
            while not body.done():
                left = self._deadline + self.excused() - time.time()
                if left <= 0:
                    timed_out = True
                    break
                await asyncio.wait({body}, timeout=left)
        except asyncio.CancelledError:
            cancelled = not body.done()
        if not body.done():
            body.cancel()
        outcome: str | None = None
        try:
            outcome = await body
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug fails the step with what went wrong
            outcome = messages.internal_error(exc)
        completed, failed = self.counts()
        total = len(self._trays)
        result = p.StepResult("completed", total, completed, failed, self._peak)
        result.skipped, result.components = self.skipped(), self.outcomes()
        if cancelled:
            result.status = "cancelled"
        elif timed_out:
            not_started = total - completed - failed - result.skipped - len(self._unfinished)
            result.status = "failed"
            result.error = messages.step_timed_out(
                self._step.component_type.value,
                total,
                self._budget,
                self._unfinished,
                self._failures(),
                not_started,
            )
        elif outcome is not None:
            result.status = "failed"
            result.error = outcome
        return result

    async def _execute(self) -> str | None:
        """All trays within the window, then the step-scoped checks; the step's error or
        None. Fail-fast: after a tray fails no new tray starts; those in flight finish."""
        window = self._step.max_parallel or len(self._trays) or 1
        running: dict[str, asyncio.Task[None]] = {}
        try:
            for tray in self._trays:
                if self._state[tray.id].status != PENDING:
                    continue
                while len(running) >= window and not self._stopping():
                    await asyncio.wait(set(running.values()), return_when=asyncio.FIRST_COMPLETED)
                if self._stopping():
                    break
                running[tray.id] = asyncio.create_task(self._run_tray(tray, running))
                self._peak = max(self._peak, len(running))
            while running:
                await asyncio.wait(set(running.values()))
        except asyncio.CancelledError:
            self._unfinished = [t.name for t in self._trays if t.id in running]
            for task in list(running.values()):
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            raise
        kind = self._step.component_type.value
        failures = self._failures()
        if failures:
            completed, failed = self.counts()
            not_started = len(self._trays) - completed - failed - self.skipped()
            return messages.step_failed(kind, len(self._trays), failures, not_started=not_started)
        if self._check_failure is not None:
            return self._check_failure
        for action in self._once:
            try:
                versions = await self._call(
                    action,
                    p.FIRMWARE_VERSIONS,
                    lambda: self._ops.firmware_versions([t.id for t in self._trays]),
                )
                for tray, version in zip(self._trays, versions, strict=True):
                    self._saw_version(tray, version)
                judge_consistency(self._trays, versions)
            except ActionFailed as exc:
                return messages.step_check_failed(kind, exc.reason)
        return None

    async def _run_tray(self, tray: TrayTarget, running: dict[str, asyncio.Task[None]]) -> None:
        state = self._state[tray.id]
        state.status = RUNNING
        try:
            first = self._firmware_step and state.next_slot == 0
            if first and await self._already_at_target(tray, state):
                state.status = SKIPPED
                return
            for index in range(state.next_slot, len(self._per_tray)):
                slot, action = self._per_tray[index]
                await self._action(tray, slot, action)
                state.next_slot = index + 1
        except CheckFailed as exc:  # about other trays: this one did what it was asked
            self._check_failure = self._check_failure or exc.reason
            state.status = COMPLETED
        except ActionFailed as exc:
            state.status = FAILED
            state.reason = "; ".join([exc.reason, *self._ctx.notes.get(tray.id, ())])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must fail the tray, not wedge the step
            state.status = FAILED
            state.reason = messages.internal_error(exc)
        else:
            state.status = COMPLETED
        finally:
            running.pop(tray.id, None)

    # --- firmware versions -----------------------------------------------------------

    async def _already_at_target(self, tray: TrayTarget, state: TrayProgress) -> bool:
        """Read the tray's version before anything is done to it (kept as `before`) and
        say whether to skip it: it already runs the requested version, the task does not
        override the check, and no update of this step was started on it (a resumed
        attempt may find the tray at the target because of that update). A tray whose
        version cannot be read is not skipped: its update then runs and says why."""
        before = await self._read_version(tray)
        if before is None:
            return False
        # A resumed attempt keeps the first attempt's `before`: this read may already
        # see what that attempt's update installed.
        state.before = before if state.before is None else state.before
        state.after = before
        target = target_version(self._ctx.input.info, tray.type)
        if self._override or target is None or before != target:
            return False
        if await self._ops.firmware_started(self._ctx.ledger_key(tray, "main")):
            return False
        log.info("tray %s already runs firmware %s: skipped", tray.name, target)
        return True

    async def _read_version(self, tray: TrayTarget) -> str | None:
        """One read of the tray's firmware inventory (recorded like every read: the tray's
        observed inventory and `observedAt` move with it); its main version, or None
        when it could not be read."""
        deadline = asyncio.timeout(POLL_ATTEMPT_TIMEOUT)
        try:
            with infra.watching(deadline):  # pushed back by outages it recovers from
                async with deadline:
                    inventory = await self._ops.firmware_inventory(tray.id)
        except Exception as exc:
            log.warning("firmware inventory of %s not read: %s", tray.name, error_text(exc))
            return None
        return inventory.version

    def _saw_version(self, tray: TrayTarget, version: str | None) -> None:
        if version is not None and self._firmware_step:
            self._state[tray.id].after = version

    # --- actions ----------------------------------------------------------------------

    async def _action(self, tray: TrayTarget, slot: str, action: ActionConfig) -> None:
        ctx, ops, name = self._ctx, self._ops, action.name
        if name is ActionName.SLEEP:
            await WAITS.sleep(sleep_seconds(action))
        elif name is ActionName.POWER_CONTROL:
            code = power_code_of(ctx, action)
            command = p.PowerCommand(ctx.ledger_key(tray, slot), tray.id, code)
            result = await self._call(action, p.POWER_CONTROL, lambda: ops.power_control(command))
            if result.outcome_unknown:
                ctx.note(tray, messages.outcome_unknown(code))
        elif name is ActionName.VERIFY_POWER_STATUS:
            await self._verify_power(tray, action)
        elif name is ActionName.VERIFY_REACHABILITY:
            await self._verify_reachability(tray, slot, action)
        elif name is ActionName.GET_POWER_STATUS:
            await self._call(
                action,
                p.POWER_STATUS,
                lambda: ops.power_status(tray.id),
                unanswered=lambda limit: ops.power_unanswered(tray.id, limit),
            )
        elif name is ActionName.FIRMWARE_CONTROL:
            await self._firmware(tray, slot, action)
        elif name is ActionName.VERIFY_FIRMWARE_VERSION:
            expected = action.parameters.get("expected_version") or target_version(
                ctx.input.info, tray.type
            )
            if not expected:
                raise ActionFailed(
                    "VerifyFirmwareVersion: no expected_version given and the task "
                    "requested no version"
                )
            versions = await self._call(
                action, p.FIRMWARE_VERSIONS, lambda: ops.firmware_versions([tray.id])
            )
            self._saw_version(tray, versions[0])
            if versions[0] != expected:
                raise ActionFailed(f"firmware version is {versions[0]}, expected {expected}")
        elif name is ActionName.BRING_UP_CONTROL:
            await self._call(action, p.BRING_UP_CONTROL, lambda: ops.bring_up_control(tray.id))
        elif name is ActionName.WAIT_BRING_UP:
            await self._wait_bring_up(tray, action)
        elif name is ActionName.INJECT_EXPECTATION:
            await self._call(action, p.INJECT_EXPECTATION, lambda: ops.inject_expectation(tray.id))
        else:
            raise ActionFailed(f"{name} cannot run per tray")

    async def _call(
        self,
        action: ActionConfig,
        what: str,
        work: Callable[[], Awaitable[T]],
        *,
        unanswered: Callable[[float], Awaitable[None]] | None = None,
    ) -> T:
        """One action call: each attempt bounded by the action's timeout, retried per the
        step's `retry` (attempts, backoff); a non-retryable HardwareError is not retried.
        `unanswered(limit)` is awaited for each attempt the hardware did not answer in
        time (its deadline cut the BMC's own time, not a wait for nico's services)."""
        retry = retry_of(self._step)
        limit = attempt_timeout(action)
        delay = retry.initial_interval.seconds
        cap = retry.max_interval.seconds if retry.max_interval else None
        attempt = 0
        outages = 0
        excused = 0.0  # seconds of this call's attempts lost to outages, and the waits after
        while True:
            attempt += 1
            final = attempt >= retry.max_attempts
            down: InfrastructureUnavailable | None = None
            silent = False  # the deadline cut the hardware's own time
            # Each attempt accounts for its own outage time: a wait it was cut off in is
            # the outage's, and nothing it saw excuses a later attempt.
            deadline = asyncio.timeout(limit)  # pushed back by outages it recovers from
            with infra.watching(deadline) as outage:
                try:
                    async with deadline:
                        return await work()
                except HardwareError as exc:
                    reason = str(exc)
                    final = final or not exc.retryable
                except InfrastructureUnavailable as exc:
                    down = exc
                except TimeoutError:
                    # A deadline that cut this attempt's wait for nico's own services is
                    # the outage's; any other is the hardware's.
                    down = infra.waiting_out()
                    silent = down is None
                    reason = f"no answer within {format_seconds(limit)}"
                except Exception as exc:
                    # A bug or an unexpected library error: the class and text go to the
                    # log, the tray's message says only that nico failed (no library name).
                    log.warning("%s failed unexpectedly: %s", what, error_text(exc))
                    reason = UNEXPECTED_ERROR
            if silent and unanswered is not None:
                await unanswered(limit)
            if down is not None:
                # Not a hardware attempt: wait on the infrastructure budget, then call
                # again with the hardware attempts that are left.
                attempt -= 1
                excused += outage.spent()
                if excused >= INFRA.total:
                    raise ActionFailed(str(down)) from None
                outages += 1
                pause = INFRA.delay(outages, random.random())
                await asyncio.sleep(pause)
                excused += pause
                continue
            # One line per failed attempt, named like the per-call activity (`power_status
            # attempt 2 failed: ...`); never a traceback: it is the hardware's answer.
            log.warning("%s attempt %d failed: %s", what, attempt, reason)
            if final:
                raise ActionFailed(reason + messages.attempts_suffix(action.name.value, attempt))
            await WAITS.sleep(delay)
            delay = delay * retry.backoff_coefficient
            if cap is not None:
                delay = min(delay, cap)

    async def _verify_power(self, tray: TrayTarget, action: ActionConfig) -> None:
        expected = expected_power(action)
        bounds = poll_bounds(action)
        seen: list[str] = []

        async def probe() -> str | None:
            obs = await observe(
                lambda: self._ops.observe_power(tray.id),
                lambda: self._ops.power_unanswered(tray.id, POLL_ATTEMPT_TIMEOUT),
            )
            if obs.error:
                return not_read(obs, "power status")
            seen.append(obs.state or PowerState.UNKNOWN.value)
            return None if obs.state == expected.value else f"power state {obs.state}"

        reason = await poll(bounds, probe)
        if reason is None:
            return
        waited = format_seconds(bounds.timeout)
        if seen:
            raise ActionFailed(
                f"power state stayed {seen[-1]} after {waited} (expected {expected})"
            )
        raise ActionFailed(f"power state not readable for {waited}: {reason}")

    async def _verify_reachability(self, tray: TrayTarget, slot: str, action: ActionConfig) -> None:
        check = ReachabilityCheck(self._ctx, tray, slot, action)
        bounds = poll_bounds(action)

        async def probe() -> str | None:
            deadline = asyncio.timeout(POLL_ATTEMPT_TIMEOUT)
            with infra.watching(deadline):  # pushed back by outages it recovers from
                try:
                    async with deadline:
                        answers = await self._ops.observe_reachability(check.query)
                except InfrastructureUnavailable as exc:  # not an answer about any BMC
                    answers = outage_answers(check.query, exc)
                except TimeoutError:
                    down = infra.waiting_out(deadline)  # cut waiting for nico's own services
                    if down is None:
                        return "reachability not checked (poll failed)"
                    answers = outage_answers(check.query, down)
                except Exception:
                    return "reachability not checked (poll failed)"
            return check.judge(answers)

        reason = await poll(bounds, probe)
        if reason is not None:
            raise check.failed(f"not reachable after {format_seconds(bounds.timeout)}: {reason}")

    async def _firmware(self, tray: TrayTarget, slot: str, action: ActionConfig) -> None:
        command = firmware_command(self._ctx, tray, slot, action)
        job_id = await self._call(
            action, p.FIRMWARE_START, lambda: self._ops.firmware_start(command)
        )
        query = p.FirmwareQuery(tray.id, job_id)
        bounds = poll_bounds(action)

        async def probe() -> str | None:
            obs = await observe(lambda: self._ops.observe_firmware(query))
            self._saw_version(tray, obs.version)
            return judge_firmware(obs)

        reason = await poll(bounds, probe)
        if reason is not None:
            raise ActionFailed(
                f"firmware update not finished after {format_seconds(bounds.timeout)}: {reason}"
            )

    async def _wait_bring_up(self, tray: TrayTarget, action: ActionConfig) -> None:
        bounds = poll_bounds(action)

        async def probe() -> str | None:
            obs = await observe(lambda: self._ops.observe_bring_up(tray.id))
            if obs.error:
                return not_read(obs, "bring-up status")
            return None if obs.state == BringUpState.INGESTED.value else f"bring-up {obs.state}"

        reason = await poll(bounds, probe)
        if reason is not None:
            raise ActionFailed(f"not ingested after {format_seconds(bounds.timeout)}: {reason}")


async def observe(
    work: Callable[[], Awaitable[p.Observation]],
    unanswered: Callable[[], Awaitable[None]] | None = None,
) -> p.Observation:
    """One poll: the answer, or why it could not be read and whether waiting helps.
    `unanswered` is awaited when the read's deadline cut the BMC's own time (not a wait
    for nico's own services)."""
    deadline = asyncio.timeout(POLL_ATTEMPT_TIMEOUT)
    # The read's own outage scope: an outage or database stall it waits out and recovers
    # from pushes its deadline back by as long as it took, as for a hardware attempt
    # (`_call`), so the BMC still gets its whole time.
    with infra.watching(deadline):
        try:
            async with deadline:
                return await work()
        except TimeoutError:
            # A poll cut while it waited for nico's own services: no BMC was read.
            down = infra.waiting_out(deadline)
        except Exception as exc:
            return failed_observation(exc)
    if down is not None:
        return p.Observation(error=str(down), infra=True)
    if unanswered is not None:
        await unanswered()
    return p.Observation(error=f"no answer within {format_seconds(POLL_ATTEMPT_TIMEOUT)}")


async def poll(bounds: PollDefaults, probe: Callable[[], Awaitable[str | None]]) -> str | None:
    """Probe now, then after 50 ms, growing toward `interval`, until done (None) or
    `timeout` passes; returns the last reason it was not done yet. Time lost to an
    outage of nico's database or Temporal (no BMC was asked) does not count against
    the timeout, up to the infrastructure budget (as the workflow's `actions.poll`)."""
    interval = WAITS.span(bounds.interval)
    deadline = time.monotonic() + WAITS.span(bounds.timeout)
    wait = min(FIRST_POLL, interval)
    excused = 0.0
    while True:
        began = time.monotonic()
        with infra.watching() as outage:  # this read's own outage time, nothing earlier
            reason = await probe()
        if reason is None:
            return None
        # A read that could not be made (the outage is its answer) excuses all its time
        # and the wait after it; any other excuses what it spent waiting for nico's own
        # services. Never more than the infrastructure budget over the whole poll.
        held = is_infra_reason(reason) and excused < INFRA.total
        lost = min(outage.spent(), INFRA.total - excused)
        excused += lost
        deadline += lost
        remaining = deadline - time.monotonic()
        if remaining <= 0 and not held:
            return reason
        await asyncio.sleep(min(wait, remaining) if remaining > 0 else wait)
        wait = min(wait * POLL_GROWTH, interval)
        if held:
            lost = min(time.monotonic() - began - lost, INFRA.total - excused)
            excused += lost
            deadline += lost
