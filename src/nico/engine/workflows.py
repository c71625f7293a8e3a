"""The task workflow: stages in order, fail-fast, each step one `run_step` activity (or,
for tasks started before that cut, one `StepWorkflow` child of
`nico.engine.step_workflow`, started by name).

Thin orchestration over pure parts: the rule model, `nico.engine.report` and the budgets
of `nico.engine.policy`. docs/engine.md explains the choices (fail-fast, timeouts, live
counts, cancel). The sandbox loads this module afresh for every task's workflow run, so it
imports no other workflow code (the actions stay with the step workflow).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

# Pure modules, shared across workflow runs (nico.engine.worker.PURE_WORKFLOW_MODULES).
with workflow.unsafe.imports_passed_through():
    from nico.domain import ComponentType, TaskStatus
    from nico.engine import messages
    from nico.engine import payloads as p
    from nico.engine.contracts import STEP_WORKFLOW, TASK_WORKFLOW, TaskWorkflowInput, TrayTarget
    from nico.engine.policy import (
        HEARTBEAT_TIMEOUT,
        STEP_MARGIN,
        execution_timeout,
        outage_allowance,
        step_budget,
        task_budget,
    )
    from nico.engine.report import CANCELLED_BY_USER, PlannedStep, TaskReport
    from nico.engine.retries import (
        FINAL_RETRY,
        INFRA,
        INFRA_ERROR_TYPE,
        REPORT_ATTEMPT_TIMEOUT,
        REPORT_RETRY,
        ROW_ATTEMPT_TIMEOUT,
        ROW_BUDGET,
        ROW_RETRY,
        STEP_RETRY,
    )
    from nico.rules.model import RuleDefinition, SequenceStep, Stage

CANCELLED_MESSAGE = "Cancelled by user"
_T = TypeVar("_T")
# The failure type of a task that ended Failed (the workflow then ends FAILED too).
TASK_FAILED = "TaskFailed"

# Marker of tasks that run each step as one `run_step` activity (docs/engine.md,
# "Upgrading workers"); histories without it replay the StepWorkflow children.
STEP_ACTIVITY_PATCH = "step-activity"
# Marker of tasks whose report carries a firmware step's skipped trays and per-tray
# versions (from -> to); a history without it never had them to record.
FIRMWARE_OUTCOMES_PATCH = "firmware-outcomes"
# Marker of tasks whose last step of a stage leaves its final counts to the stage's own
# report update: one live save fewer per stage, none between the last step and the final
# status write (which carries the report).
STAGE_END_SAVE_PATCH = "stage-end-save"
# Marker of tasks whose steps' time limits do not count time spent waiting out an outage
# of nico's own services: their step activities and the task's own deadline get that
# allowance (up to the infrastructure budget per step) on top of the rule's budgets.
OUTAGE_ALLOWANCE_PATCH = "outage-allowance"


@dataclass
class _Active:
    position: int
    step: SequenceStep
    trays: list[TrayTarget]


@workflow.defn(name=TASK_WORKFLOW)
class TaskWorkflow:
    """One task: capability check, Pending -> Running, stages in order, final status."""

    def __init__(self) -> None:
        self._report: TaskReport | None = None
        self._message = ""
        self._version = 0
        self._saved = 0
        self._closing = False
        self._summaries: list[p.StepSummary] = []
        self._skipped = 0  # trays of firmware steps left alone (already at the version)
        self._begun = False  # the task row is Running (begin_task moved it)
        self._flusher: asyncio.Task[None] | None = None
        self._stages: asyncio.Task[str | None] | None = None  # the stages' body
        self._step_allowance = 0.0  # seconds a step activity may run for outages

    @workflow.signal(name=p.STEP_PROGRESS_SIGNAL)
    def step_progress(self, progress: p.StepProgress) -> None:
        if self._report is None:
            return
        if self._report.update_counts(
            progress.stage, progress.position, progress.completed, progress.failed
        ):
            self._touch()

    @workflow.query(name="report")
    def report(self) -> dict[str, Any] | None:
        return self._report.to_wire() if self._report else None

    def _touch(self) -> None:
        self._version += 1

    @workflow.run
    async def run(self, data: TaskWorkflowInput) -> p.TaskWorkflowResult:
        """The task's outcome. Any unexpected error (a rule snapshot that cannot be read, a
        bug) fails the task through the normal finish path, instead of retrying the
        workflow task while the task stays Running until the execution timeout."""
        try:
            return await self._run(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, ApplicationError) and exc.type == TASK_FAILED:
                raise
            return await self._fail_unexpectedly(data, exc)

    async def _fail_unexpectedly(
        self, data: TaskWorkflowInput, exc: Exception
    ) -> p.TaskWorkflowResult:
        workflow.logger.exception("task workflow failed unexpectedly")
        message = messages.internal_error(exc)
        if self._begun and self._report is not None:
            self._report.finalize_cancelled(workflow.now(), message)
        try:
            return await self._finish(data, TaskStatus.FAILED, message)
        except ApplicationError:
            raise
        except Exception as again:  # cannot even finish: fail the run (the reconciler
            # then fails the task), never loop on the workflow task
            raise ApplicationError(
                f"{message}; writing the final status failed: {again}",
                type=TASK_FAILED,
                non_retryable=True,
            ) from again

    async def _run(self, data: TaskWorkflowInput) -> p.TaskWorkflowResult:
        rule = RuleDefinition.from_wire(data.rule_definition)
        by_type: dict[str, list[TrayTarget]] = {}
        for tray in data.trays:
            by_type.setdefault(ComponentType.parse(tray.type).value, []).append(tray)
        stages = rule.stages()
        report = TaskReport.initial(
            [
                (
                    stage.number,
                    [
                        PlannedStep(
                            s.component_type.value, len(by_type.get(s.component_type.value, []))
                        )
                        for _, s in stage.steps
                    ],
                )
                for stage in stages
            ]
        )
        self._report = report
        begin, cancelled = await _land(
            workflow.start_activity(
                p.BEGIN_TASK,
                p.BeginTaskInput(
                    task_id=data.task_id,
                    rule_definition=data.rule_definition,
                    trays=data.trays,
                    report=report.to_wire(),
                    message="Starting",
                ),
                result_type=p.BeginTaskResult,
                start_to_close_timeout=ROW_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=ROW_BUDGET,
                retry_policy=ROW_RETRY,
            )
        )
        if not begin.started:
            if begin.error:
                raise ApplicationError(begin.error, type=TASK_FAILED, non_retryable=True)
            return p.TaskWorkflowResult(status=begin.status, message="task was no longer Pending")
        self._begun = True
        if cancelled:  # cancelled while it began: Running now, so end it as cancelled
            report.finalize_cancelled(workflow.now(), CANCELLED_BY_USER)
            await self._finish(data, TaskStatus.TERMINATED, CANCELLED_MESSAGE)
            raise asyncio.CancelledError()

        budget = task_budget(rule, {k: len(v) for k, v in by_type.items()})
        if workflow.patched(OUTAGE_ALLOWANCE_PATCH):
            self._step_allowance = INFRA.total
            budget += outage_allowance(rule)
        self._flusher = asyncio.create_task(self._flush(data.task_id))
        body = self._stages = asyncio.create_task(self._run_stages(data, stages, by_type))
        try:
            await workflow.wait_condition(body.done, timeout=budget)
        except TimeoutError:
            body.cancel()
            await _settle(body)
            report.finalize_cancelled(workflow.now(), messages.task_over_budget(budget))
            return await self._finish(data, TaskStatus.FAILED, report.error or "")
        except asyncio.CancelledError:
            body.cancel()
            await _settle(body)
            report.finalize_cancelled(workflow.now(), CANCELLED_BY_USER)
            await self._finish(data, TaskStatus.TERMINATED, CANCELLED_MESSAGE)
            raise
        failure = body.result()
        if failure is not None:
            return await self._finish(data, TaskStatus.FAILED, failure)
        return await self._finish(
            data, TaskStatus.SUCCEEDED, messages.succeeded(skipped=self._skipped)
        )

    async def _finish(
        self, data: TaskWorkflowInput, status: TaskStatus, message: str
    ) -> p.TaskWorkflowResult:
        """Stop live saves, write the final status with the final report (CAS: from
        Running, or from Pending when the task failed before it began)."""
        self._closing = True
        if self._flusher is not None:
            await _settle(self._flusher)
        report = self._report.to_wire() if self._begun and self._report is not None else None
        # A cancel arriving now does not interrupt the write: the task keeps the outcome
        # it reached (and the cancel finds it finished).
        await _land(
            workflow.start_activity(
                p.FINISH_TASK,
                p.FinishTaskInput(
                    task_id=data.task_id,
                    rack_id=data.rack_id,
                    status=status.value,
                    message=message,
                    report=report,
                    expected=(TaskStatus.RUNNING if self._begun else TaskStatus.PENDING).value,
                ),
                result_type=bool,
                start_to_close_timeout=ROW_ATTEMPT_TIMEOUT,
                retry_policy=FINAL_RETRY,
            )
        )
        if status is TaskStatus.FAILED:
            raise ApplicationError(message, type=TASK_FAILED, non_retryable=True)
        return p.TaskWorkflowResult(status=status.value, message=message, steps=self._summaries)

    async def _flush(self, task_id: str) -> None:
        """Persist the live report when it changed; one save in flight at a time, so bursts
        of changes coalesce (the final status write carries the last report anyway)."""
        while True:
            await workflow.wait_condition(lambda: self._version != self._saved or self._closing)
            if self._closing:
                return
            if (
                self._stages is not None
                and self._stages.done()
                and workflow.patched(STAGE_END_SAVE_PATCH)
            ):
                return  # the stages ended: the final status write carries the report
            version = self._version
            assert self._report is not None
            try:
                await workflow.execute_activity(
                    p.SAVE_REPORT,
                    p.SaveReportInput(task_id, self._report.to_wire(), self._message),
                    start_to_close_timeout=REPORT_ATTEMPT_TIMEOUT,
                    retry_policy=REPORT_RETRY,
                )
            except ActivityError as exc:
                cause = exc.cause
                if not (isinstance(cause, ApplicationError) and cause.type == INFRA_ERROR_TYPE):
                    # (an outage is already one line of the worker's outage log)
                    workflow.logger.warning("live report save failed; the next change retries")
            self._saved = version

    async def _run_stages(
        self,
        data: TaskWorkflowInput,
        stages: tuple[Stage, ...],
        by_type: dict[str, list[TrayTarget]],
    ) -> str | None:
        """Stages in ascending order; returns the task failure message, or None."""
        assert self._report is not None
        report = self._report
        for index, stage in enumerate(stages, start=1):
            active = [
                _Active(position, step, by_type.get(step.component_type.value, []))
                for position, (_, step) in enumerate(stage.steps)
            ]
            active = [a for a in active if a.trays]
            report.begin_stage(stage.number, workflow.now())
            self._message = messages.running_message(
                stage.number, index, len(stages), [a.step.component_type.value for a in active]
            )
            self._touch()
            error = await self._run_stage(data, stage, active) if active else None
            if error is not None:
                report.fail_stage(stage.number, error, workflow.now())
                self._touch()
                return messages.stage_failed(stage.number, error)
            report.complete_stage(stage.number, workflow.now())
            self._touch()
        return None

    async def _run_stage(
        self, data: TaskWorkflowInput, stage: Stage, active: list[_Active]
    ) -> str | None:
        """Steps in parallel; the first failure cancels the siblings. Tasks started since
        the step activity run each step as one `run_step` activity; tasks started before
        it (no marker in their history) keep their StepWorkflow children."""
        if workflow.patched(STEP_ACTIVITY_PATCH):
            return await self._run_stage_in_activities(data, stage, active)
        return await self._run_stage_in_children(data, stage, active)

    def _step_input(self, data: TaskWorkflowInput, stage: Stage, entry: _Active) -> p.StepInput:
        return p.StepInput(
            task_id=data.task_id,
            stage=stage.number,
            position=entry.position,
            step=entry.step.to_wire(),
            trays=entry.trays,
            task_trays=data.trays,
            operation_type=data.operation_type,
            operation_code=data.operation_code,
            info=data.info,
        )

    async def _run_stage_in_activities(
        self, data: TaskWorkflowInput, stage: Stage, active: list[_Active]
    ) -> str | None:
        """One heartbeating `run_step` activity per step (history: a constant per step,
        plus live-count signals that grow with trays, never with polls); `delayAfter` is
        a durable timer after a completed step."""
        results: dict[int, p.StepResult] = {}
        failed_order: list[int] = []
        handles: dict[int, workflow.ActivityHandle[p.StepResult]] = {}
        delaying: dict[int, asyncio.Task[None]] = {}

        async def delay(position: int, seconds: float, result: p.StepResult) -> None:
            # Cancelled while waiting: the step itself did complete.
            with contextlib.suppress(asyncio.CancelledError):
                await workflow.sleep(seconds)
            results[position] = result

        async def watch(entry: _Active) -> None:
            total = len(entry.trays)
            try:
                result = await handles[entry.position]
            except ActivityError as exc:
                if isinstance(exc.cause, TemporalCancelledError):
                    result = p.StepResult("cancelled", total, 0, 0, 0)
                else:
                    cause = exc.cause
                    if isinstance(cause, TemporalTimeoutError):
                        text = "its worker did not finish it in time"
                    elif isinstance(cause, ApplicationError):
                        text = cause.message
                    else:
                        text = str(cause or exc)
                    result = p.StepResult("failed", total, 0, 0, 0, f"step ended: {text}")
            pause = entry.step.delay_after.seconds if entry.step.delay_after else 0.0
            # The stage's last step to complete: the stage records its counts right
            # after (same workflow task), so a save here would only delay the next stage
            # or the final status write.
            ends_stage = (
                result.status == "completed" and pause == 0 and len(results) == len(active) - 1
            )
            if (
                self._report is not None
                and self._report.update_counts(
                    stage.number, entry.position, result.completed, result.failed
                )
                and not (ends_stage and workflow.patched(STAGE_END_SAVE_PATCH))
            ):
                self._touch()  # the final counts show while delayAfter runs
            if result.status == "completed" and pause > 0:
                delaying[entry.position] = asyncio.create_task(delay(entry.position, pause, result))
                return
            results[entry.position] = result
            if result.status == "failed":
                failed_order.append(entry.position)

        def stop_others() -> None:
            for position, handle in handles.items():
                if position not in results:
                    handle.cancel()
            for task in delaying.values():
                task.cancel()

        watchers: list[asyncio.Task[None]] = []
        try:
            for entry in active:
                budget = step_budget(entry.step, len(entry.trays))
                pause = entry.step.delay_after.seconds if entry.step.delay_after else 0.0
                handles[entry.position] = workflow.start_activity(
                    p.RUN_STEP,
                    p.StepRunInput(
                        step=self._step_input(data, stage, entry),
                        limit=max(budget - pause, 0.0),
                        budget=budget,
                    ),
                    result_type=p.StepResult,
                    # Retried (resuming from its heartbeat details) while a worker dies
                    # mid-step, until the step's budget is spent.
                    schedule_to_close_timeout=timedelta(
                        seconds=budget + STEP_MARGIN + self._step_allowance
                    ),
                    heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT),
                    retry_policy=STEP_RETRY,
                    # A cancel waits until the step stopped its hardware calls.
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
                watchers.append(asyncio.create_task(watch(entry)))
            await workflow.wait_condition(lambda: len(results) == len(active) or bool(failed_order))
        except asyncio.CancelledError:
            stop_others()
            await workflow.wait_condition(lambda: len(results) == len(handles))
            self._record(stage.number, active, results, None)
            raise
        if failed_order and len(results) < len(active):
            stop_others()  # fail-fast across steps
            await workflow.wait_condition(lambda: len(results) == len(active))
        return self._stage_outcome(stage.number, active, results, failed_order)

    async def _run_stage_in_children(
        self, data: TaskWorkflowInput, stage: Stage, active: list[_Active]
    ) -> str | None:
        """Tasks started before the step activity: one StepWorkflow child per step."""
        results: dict[int, p.StepResult] = {}
        failed_order: list[int] = []
        handles: dict[int, workflow.ChildWorkflowHandle[Any, p.StepResult]] = {}

        async def watch(entry: _Active) -> None:
            handle = handles[entry.position]
            try:
                result = await handle
            except ChildWorkflowError as exc:
                cause = exc.cause
                text = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
                result = p.StepResult("failed", len(entry.trays), 0, 0, 0, f"step ended: {text}")
            results[entry.position] = result
            if result.status == "failed":
                failed_order.append(entry.position)

        watchers: list[asyncio.Task[None]] = []
        try:
            for entry in active:
                step_input = self._step_input(data, stage, entry)
                budget = step_budget(entry.step, len(entry.trays))
                handles[entry.position] = await workflow.start_child_workflow(
                    STEP_WORKFLOW,
                    step_input,
                    id=f"{data.task_id}/stage-{stage.number}/step-{entry.position}",
                    result_type=p.StepResult,
                    execution_timeout=execution_timeout(budget),
                )
                watchers.append(asyncio.create_task(watch(entry)))
            await workflow.wait_condition(lambda: len(results) == len(active) or bool(failed_order))
        except asyncio.CancelledError:
            for handle in handles.values():
                handle.cancel()
            await workflow.wait_condition(lambda: len(results) == len(handles))
            self._record(stage.number, active, results, None)
            raise
        if failed_order and len(results) < len(active):
            # Fail-fast across steps: cancel the siblings still running.
            for position, handle in handles.items():
                if position not in results:
                    handle.cancel()
            await workflow.wait_condition(lambda: len(results) == len(active))
        return self._stage_outcome(stage.number, active, results, failed_order)

    def _stage_outcome(
        self,
        number: int,
        active: list[_Active],
        results: dict[int, p.StepResult],
        failed_order: list[int],
    ) -> str | None:
        """Record the stage's step outcomes; its error (the first step to fail), or None."""
        first_failure = failed_order[0] if failed_order else None
        self._record(number, active, results, first_failure)
        if first_failure is None:
            return None
        failing = next(a for a in active if a.position == first_failure)
        return results[first_failure].error or f"{failing.step.component_type.value} step failed"

    def _record(
        self,
        number: int,
        active: list[_Active],
        results: dict[int, p.StepResult],
        first_failure: int | None,
    ) -> None:
        """Write step outcomes into the report and keep the per-step summaries."""
        assert self._report is not None
        now = workflow.now()
        failed_type = next(
            (a.step.component_type.value for a in active if a.position == first_failure), ""
        )
        for entry in active:
            result = results.get(entry.position)
            if result is None:
                continue
            self._summaries.append(
                p.StepSummary(
                    stage=number,
                    component_type=entry.step.component_type.value,
                    max_parallel=entry.step.max_parallel,
                    total=result.total,
                    peak_in_flight=result.peak_in_flight,
                    status=result.status,
                )
            )
            if result.components is not None and workflow.patched(FIRMWARE_OUTCOMES_PATCH):
                self._report.record_outcomes(
                    number, entry.position, result.skipped, result.components
                )
                self._skipped += result.skipped
            if result.status == "completed":
                self._report.complete_step(
                    number, entry.position, result.completed, result.failed, now
                )
            elif result.status == "failed":
                self._report.fail_step(
                    number,
                    entry.position,
                    result.error or "failed",
                    result.completed,
                    result.failed,
                    now,
                )
            elif first_failure is not None:
                self._report.fail_step(
                    number,
                    entry.position,
                    messages.sibling_cancelled(failed_type),
                    result.completed,
                    result.failed,
                    now,
                )
            else:  # cancelled with the task: counts now, status when the report is finalized
                self._report.update_counts(number, entry.position, result.completed, result.failed)
        self._touch()


async def _land(activity: workflow.ActivityHandle[_T]) -> tuple[_T, bool]:
    """Await a task-row write to its end even if the workflow is cancelled meanwhile (a
    cancelled write would leave the row half-way: the status is the task's truth).
    Returns the result and whether a cancel arrived while waiting."""
    try:
        return await asyncio.shield(activity), False
    except asyncio.CancelledError:
        return await activity, True


async def _settle(task: asyncio.Task[Any]) -> None:
    """Wait for a task we cancelled or closed, whatever it ends with."""
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # the outcome was already recorded by the task itself
        workflow.logger.exception("background workflow task ended with an error")
