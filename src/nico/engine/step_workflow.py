"""The step workflow, kept for tasks started before steps ran as one `run_step` activity
(docs/engine.md, "Upgrading workers"): trays through pre -> main -> post, at most
`maxParallel` at a time, each action a call of `nico.engine.actions`.

Its own module so that a `TaskWorkflow` run, which the sandbox loads afresh each time,
does not also load this class and the actions it calls.
"""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import workflow

# Workflow code (sandboxed, like this module).
from nico.engine.actions import (
    ActionFailed,
    CheckFailed,
    StepContext,
    run_step_action,
    run_tray_action,
)

# Pure modules, shared across workflow runs (nico.engine.worker.PURE_WORKFLOW_MODULES).
with workflow.unsafe.imports_passed_through():
    from nico.engine import messages
    from nico.engine import payloads as p
    from nico.engine.contracts import STEP_WORKFLOW, TrayTarget
    from nico.engine.policy import STEP_SCOPED_ACTIONS, step_budget
    from nico.rules.model import ActionConfig, SequenceStep


def _slots(step: SequenceStep) -> list[tuple[str, ActionConfig]]:
    """Actions in execution order with their ledger slot names (`pre0`, `main`, `post1`)."""
    slots = [(f"pre{i}", a) for i, a in enumerate(step.pre_operation)]
    slots.append(("main", step.main_operation))
    slots += [(f"post{i}", a) for i, a in enumerate(step.post_operation)]
    return slots


@workflow.defn(name=STEP_WORKFLOW)
class StepWorkflow:
    """One rule step over the task's trays of its component type."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[None]] = {}
        self._completed = 0
        self._failures: list[tuple[str, str]] = []
        # The first failed check of other trays (no tray of this step is blamed for it).
        self._check_failure: str | None = None
        self._peak = 0
        self._finished = False
        self._sent = (0, 0)  # counts last signalled to the parent
        # Names of trays still in flight when the step was cut short (timeout, cancel).
        self._unfinished: list[str] = []

    @workflow.run
    async def run(self, data: p.StepInput) -> p.StepResult:
        """The step's outcome; a bug in this code fails the step with what went wrong
        instead of retrying the workflow task until the step's execution timeout."""
        try:
            return await self._run(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            workflow.logger.exception("step workflow failed unexpectedly")
            return p.StepResult(
                status="failed",
                total=len(data.trays),
                completed=self._completed,
                failed=len(self._failures),
                peak_in_flight=self._peak,
                error=messages.internal_error(exc),
            )

    async def _run(self, data: p.StepInput) -> p.StepResult:
        step = SequenceStep.from_wire(data.step)
        ctx = StepContext(input=data, step=step)
        budget = step_budget(step, len(data.trays))
        body = asyncio.create_task(self._execute(ctx))
        reporter = asyncio.create_task(self._report_progress(data))
        cancelled = timed_out = False
        try:
            await workflow.wait_condition(body.done, timeout=budget)
        except TimeoutError:
            timed_out = True
        except asyncio.CancelledError:
            cancelled = True
        if not body.done():
            body.cancel()
        outcome: str | None = None
        with contextlib.suppress(asyncio.CancelledError):
            outcome = await body
        self._finished = True
        reporter.cancel()
        total = len(data.trays)
        done = self._completed + len(self._failures)
        not_started = total - done - len(self._unfinished)
        result = p.StepResult(
            status="completed",
            total=total,
            completed=self._completed,
            failed=len(self._failures),
            peak_in_flight=self._peak,
        )
        if cancelled:
            result.status = "cancelled"
        elif timed_out:
            result.status = "failed"
            result.error = messages.step_timed_out(
                step.component_type.value,
                total,
                budget,
                self._unfinished,
                self._failures,
                not_started,
            )
        elif outcome is not None:
            result.status = "failed"
            result.error = outcome
        return result

    async def _execute(self, ctx: StepContext) -> str | None:
        """Run all trays within the window; returns the step's error, or None on success."""
        step = ctx.step
        trays = list(ctx.input.trays)
        window = step.max_parallel or len(trays) or 1
        per_tray = [(slot, a) for slot, a in _slots(step) if a.name not in STEP_SCOPED_ACTIONS]
        once = [a for _, a in _slots(step) if a.name in STEP_SCOPED_ACTIONS]
        queue = list(trays)
        try:
            while queue and not self._stopping():
                await workflow.wait_condition(
                    lambda: len(self._running) < window or self._stopping()
                )
                if self._stopping():
                    break
                tray = queue.pop(0)
                self._running[tray.id] = asyncio.create_task(self._run_tray(ctx, tray, per_tray))
                self._peak = max(self._peak, len(self._running))
            # Fail-fast within the step: start no new trays, let in-flight ones finish so
            # the error can say how many failed and why.
            await workflow.wait_condition(lambda: not self._running)
        except asyncio.CancelledError:
            names = {t.id: t.name for t in trays}
            self._unfinished = [names[i] for i in self._running]
            for task in list(self._running.values()):
                task.cancel()
            await workflow.wait_condition(lambda: not self._running)
            raise
        kind = step.component_type.value
        if self._failures:
            order = {t.name: i for i, t in enumerate(trays)}
            return messages.step_failed(
                kind,
                len(trays),
                sorted(self._failures, key=lambda f: order.get(f[0], 0)),
                not_started=len(trays) - self._completed - len(self._failures),
            )
        if self._check_failure is not None:
            return self._check_failure
        for action in once:
            try:
                await run_step_action(ctx, action)
            except ActionFailed as exc:
                return messages.step_check_failed(kind, exc.reason)
        if step.delay_after is not None and step.delay_after.seconds > 0:
            await workflow.sleep(step.delay_after.seconds)
        return None

    def _stopping(self) -> bool:
        """Fail-fast: a tray failed, or a check of other trays did."""
        return bool(self._failures) or self._check_failure is not None

    async def _run_tray(
        self, ctx: StepContext, tray: TrayTarget, actions: list[tuple[str, ActionConfig]]
    ) -> None:
        try:
            for slot, action in actions:
                await run_tray_action(ctx, tray, slot, action)
        except CheckFailed as exc:  # about other trays: this one did what it was asked
            self._check_failure = self._check_failure or exc.reason
            self._completed += 1
        except ActionFailed as exc:
            reason = "; ".join([exc.reason, *ctx.notes.get(tray.id, ())])
            self._failures.append((tray.name, reason))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must fail the tray, not wedge the workflow
            workflow.logger.exception("tray %s failed unexpectedly", tray.name)
            self._failures.append((tray.name, messages.internal_error(exc)))
        else:
            self._completed += 1
        finally:
            self._running.pop(tray.id, None)

    async def _report_progress(self, data: p.StepInput) -> None:
        """Send the parent cumulative counts; one signal in flight at a time, so bursts of
        tray completions coalesce into few signals."""
        parent = workflow.info().parent
        if parent is None:
            return
        handle = workflow.get_external_workflow_handle(parent.workflow_id)
        self._sent = (0, 0)
        while True:
            await workflow.wait_condition(
                lambda: (self._completed, len(self._failures)) != self._sent or self._finished
            )
            if self._finished:
                return
            sent = self._sent = (self._completed, len(self._failures))
            try:
                await handle.signal(
                    p.STEP_PROGRESS_SIGNAL,
                    p.StepProgress(data.stage, data.position, sent[0], sent[1]),
                )
            except asyncio.CancelledError:
                return
            except Exception:  # the parent is gone; nothing left to tell
                return
