"""Temporal activities: the engine's only I/O (database, hardware backends).

Each hardware activity acts on one tray (or reads a few). Its whole body (database work
included) runs inside `attempt()`: it heartbeats, so a crashed worker is noticed within
seconds, and ends itself shortly before its start-to-close timeout, so no request is
left in flight when Temporal retries. `HardwareError(retryable=False)` becomes a
non-retryable failure. Every database read or write and every backend call runs
through `nico.engine.infra.retrying`: an outage of nico's own database or Temporal is
waited out and never spends a hardware attempt (`nico.engine.retries`). Side effects
(power commands, firmware starts) go through the operation ledger (`nico.engine.ledger`):
an accepted one is never sent again, and a power cycle whose earlier attempt may have
reached the BMC is not sent a second time.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from nico import logs, metrics
from nico.domain import TaskStatus
from nico.engine import infra
from nico.engine import payloads as p
from nico.engine.capabilities import TargetTray, capability_gaps, uncovered_trays
from nico.engine.hardware_ops import (
    AttemptExpired,
    HardwareOps,
    failed_observation,
    outage_answers,
)
from nico.engine.infra import InfrastructureUnavailable, retrying
from nico.engine.policy import HEARTBEAT_EVERY, attempt_deadline
from nico.engine.retries import INFRA_ERROR_TYPE
from nico.engine.step_activity import run_step
from nico.hardware.interface import HardwareError
from nico.hardware.registry import BackendRegistry
from nico.rules.durations import format_seconds
from nico.rules.model import RuleDefinition
from nico.services import Services
from nico.store.models import Task
from nico.store.tasks import save_running_report, transition_task

log = logging.getLogger(__name__)
T = TypeVar("T")

TaskFinishedHook = Callable[[uuid.UUID], Awaitable[None]]


@asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat in the background while an activity runs, so the server notices a dead
    worker after HEARTBEAT_TIMEOUT instead of the attempt's full timeout, and a cancel
    reaches the call in flight."""

    async def pump() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            activity.heartbeat()

    task = asyncio.create_task(pump())
    try:
        yield
    finally:
        task.cancel()


@asynccontextmanager
async def attempt() -> AsyncIterator[None]:
    """The whole body of an activity: heartbeating, and bounded by the attempt's own
    deadline (its start-to-close timeout less a little slack), so a slow hardware call is
    cancelled here rather than left running while Temporal starts the next attempt. A
    deadline that cuts a wait for the database or Temporal is that outage's
    (`InfrastructureUnavailable`), not the hardware's."""
    timeout = activity.info().start_to_close_timeout
    total = timeout.total_seconds() if timeout else None
    with infra.watching():
        async with heartbeating():
            deadline = asyncio.timeout(attempt_deadline(total) if total else None)
            try:
                async with deadline:
                    yield
            except TimeoutError:
                if total and deadline.expired():
                    outage = infra.waiting_out(deadline)
                    if outage is not None:
                        raise outage from None
                    raise AttemptExpired(f"no answer within {format_seconds(total)}") from None
                raise


@asynccontextmanager
async def hardware_attempt() -> AsyncIterator[None]:
    """`attempt()` with its errors mapped for Temporal (retryable or not, attempt number)."""
    try:
        async with attempt():
            yield
    except HardwareError as exc:
        raise _hardware_failure(exc) from None
    except (AttemptExpired, InfrastructureUnavailable) as exc:
        # InfrastructureUnavailable is not a hardware attempt: the workflow waits on the
        # infrastructure budget and calls again.
        info = activity.info()
        kind = INFRA_ERROR_TYPE if isinstance(exc, InfrastructureUnavailable) else "AttemptExpired"
        log.warning("%s attempt %d failed: %s", info.activity_type, info.attempt, exc)
        raise ApplicationError(
            str(exc), info.attempt, type=kind, category=ApplicationErrorCategory.BENIGN
        ) from None


@asynccontextmanager
async def row_attempt() -> AsyncIterator[None]:
    """`attempt()` for task-row writes: an outage that outlasts the attempt fails it as
    BENIGN (Temporal retries it on the write's budget), so the worker log holds the one
    outage line of `infra.OUTAGES`, not a traceback per attempt and task."""
    try:
        async with attempt():
            yield
    except InfrastructureUnavailable as exc:
        raise ApplicationError(
            str(exc),
            type=INFRA_ERROR_TYPE,
            category=ApplicationErrorCategory.BENIGN,
        ) from None


def _hardware_failure(exc: HardwareError) -> ApplicationError:
    """The backend's (credential-free) message, with this attempt's number as detail.
    Logged here in one line; BENIGN keeps the SDK from logging a traceback per attempt
    (the failure is the hardware's answer, not a bug)."""
    info = activity.info()
    log.warning("%s attempt %d failed: %s", info.activity_type, info.attempt, exc)
    return ApplicationError(
        str(exc),
        info.attempt,
        type="HardwareError",
        non_retryable=not exc.retryable,
        category=ApplicationErrorCategory.BENIGN,
    )


class EngineActivities:
    """Activities bound to one process's services (database, secrets, backends)."""

    def __init__(self, services: Services, on_task_finished: TaskFinishedHook | None) -> None:
        self._services = services
        self._registry: BackendRegistry = services.backends
        self._ops = HardwareOps(services)
        self._on_task_finished = on_task_finished

    # --- task rows --------------------------------------------------------------------

    @activity.defn(name=p.BEGIN_TASK)
    async def begin_task(self, data: p.BeginTaskInput) -> p.BeginTaskResult:
        """Pre-dispatch capability check, then Pending -> Running with the initial report."""
        async with row_attempt():
            return await self._begin_task(data)

    async def _begin_task(self, data: p.BeginTaskInput) -> p.BeginTaskResult:
        task_id = uuid.UUID(data.task_id)
        rule = RuleDefinition.from_wire(data.rule_definition)
        refs = await retrying(lambda: self._registry.tray_refs(t.id for t in data.trays))
        for ref in list(refs.values())[:1]:
            logs.remember_rack(ref.rack_id, data.task_id)
        operation = await self._db(lambda session: _task_operation(session, task_id))
        gaps = uncovered_trays(rule, data.trays)
        missing = [t.name for t in data.trays if t.id not in refs]
        if missing:
            gaps.append(f"targeted trays no longer exist: {', '.join(missing)}")
        try:
            gaps += capability_gaps(
                rule,
                [
                    TargetTray(r.name, r.type, r.backend)
                    for r in (refs[t.id] for t in data.trays if t.id in refs)
                ],
                lambda backend, kind: self._registry.backend(backend).capabilities(kind),
                operation,
            )
        except HardwareError as exc:
            gaps.append(str(exc))
        error = "; ".join(gaps)

        async def write(session: AsyncSession) -> tuple[bool, str]:
            if gaps:
                moved = await transition_task(
                    session, task_id, TaskStatus.FAILED, message=error, expected=TaskStatus.PENDING
                )
            else:
                moved = await transition_task(
                    session,
                    task_id,
                    TaskStatus.RUNNING,
                    message=data.message,
                    report=data.report,
                    expected=TaskStatus.PENDING,
                )
            return moved, await _task_status(session, task_id)

        moved, status = await self._db(write)
        failed = started = moved
        if gaps:
            if failed:
                await self._notify_finished(data.task_id)
            return p.BeginTaskResult(started=False, status=status, error=error)
        # A retried begin whose first attempt already moved the task finds it Running.
        return p.BeginTaskResult(started=started or status == TaskStatus.RUNNING, status=status)

    @activity.defn(name=p.SAVE_REPORT)
    async def save_report(self, data: p.SaveReportInput) -> None:
        async with row_attempt():
            await self._db(
                lambda session: save_running_report(
                    session, uuid.UUID(data.task_id), data.report, data.message
                )
            )

    @activity.defn(name=p.FINISH_TASK)
    async def finish_task(self, data: p.FinishTaskInput) -> bool:
        """Running (or Pending) -> final status (CAS), then tell the task manager the rack
        freed up."""
        async with row_attempt():
            changed = await self._db(
                lambda session: transition_task(
                    session,
                    uuid.UUID(data.task_id),
                    TaskStatus(data.status),
                    message=data.message,
                    report=data.report,
                    expected=TaskStatus(data.expected),
                )
            )
        if changed:
            await self._count_finished(uuid.UUID(data.task_id))
        await self._notify_finished(data.rack_id, rack=True)
        return changed

    async def _count_finished(self, task_id: uuid.UUID) -> None:
        """Metrics of a task that just reached its final status (never fails the task)."""
        try:
            async with self._services.db.session() as session:
                task = await session.get(Task, task_id)
                if task is not None:
                    metrics.task_finished(
                        task.operation_type, task.status, task.started, task.finished, task.report
                    )
        except Exception:  # metrics are best effort
            log.exception("counting finished task %s failed", task_id)

    async def _notify_finished(self, ident: str, *, rack: bool = False) -> None:
        if self._on_task_finished is None:
            return
        try:
            if rack:
                rack_id = uuid.UUID(ident)
            else:
                rack_id = await self._rack_of_task(uuid.UUID(ident))
            await self._on_task_finished(rack_id)
        except Exception:  # the periodic sweep promotes anything this missed
            log.exception("on_task_finished hook failed for %s", ident)

    async def _rack_of_task(self, task_id: uuid.UUID) -> uuid.UUID:
        async with self._services.db.session() as session:
            task = await session.get(Task, task_id)
            if task is None:
                raise LookupError(f"task {task_id} not found")
            return task.rack_id

    async def _db(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await self._ops.db(work)

    # --- side effects (nico.engine.hardware_ops does the work) -------------------------

    @activity.defn(name=p.POWER_CONTROL)
    async def power_control(self, data: p.PowerCommand) -> p.PowerResult:
        async with hardware_attempt():
            return await self._ops.power_control(data)

    @activity.defn(name=p.FIRMWARE_START)
    async def firmware_start(self, data: p.FirmwareCommand) -> str:
        async with hardware_attempt():
            return await self._ops.firmware_start(data)

    @activity.defn(name=p.BRING_UP_CONTROL)
    async def bring_up_control(self, data: p.TrayQuery) -> None:
        async with hardware_attempt():
            await self._ops.bring_up_control(data.tray_id)

    @activity.defn(name=p.INJECT_EXPECTATION)
    async def inject_expectation(self, data: p.TrayQuery) -> None:
        async with hardware_attempt():
            await self._ops.inject_expectation(data.tray_id)

    # --- reads (retried) ----------------------------------------------------------------

    @activity.defn(name=p.POWER_STATUS)
    async def power_status(self, data: p.TrayQuery) -> str:
        async with hardware_attempt():
            return await self._ops.power_status(data.tray_id)

    @activity.defn(name=p.FIRMWARE_VERSIONS)
    async def firmware_versions(self, data: p.TraysQuery) -> list[str]:
        async with hardware_attempt():
            return await self._ops.firmware_versions(data.tray_ids)

    # --- polls (one attempt; a failure is an answer, not an error) ------------------------

    async def _observe(self, work: Callable[[], Awaitable[p.Observation]]) -> p.Observation:
        """One poll: the answer, or why it could not be read and whether waiting helps."""
        try:
            async with attempt():
                return await work()
        except Exception as exc:
            return failed_observation(exc)

    @activity.defn(name=p.OBSERVE_POWER)
    async def observe_power(self, data: p.TrayQuery) -> p.Observation:
        return await self._observe(lambda: self._ops.observe_power(data.tray_id))

    @activity.defn(name=p.OBSERVE_REACHABILITY)
    async def observe_reachability(self, data: p.ReachabilityQuery) -> list[list[p.Observation]]:
        try:
            async with attempt():
                return await self._ops.observe_reachability(data)
        except InfrastructureUnavailable as exc:  # not an answer about any BMC
            return outage_answers(data, exc)

    @activity.defn(name=p.OBSERVE_FIRMWARE)
    async def observe_firmware(self, data: p.FirmwareQuery) -> p.Observation:
        return await self._observe(lambda: self._ops.observe_firmware(data))

    @activity.defn(name=p.OBSERVE_BRING_UP)
    async def observe_bring_up(self, data: p.TrayQuery) -> p.Observation:
        return await self._observe(lambda: self._ops.observe_bring_up(data.tray_id))

    # --- a whole step (tasks started since the step activity) ---------------------------

    @activity.defn(name=p.RUN_STEP)
    async def run_step(self, data: p.StepRunInput) -> p.StepResult:
        return await run_step(self._ops, data)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.run_step,
            self.begin_task,
            self.save_report,
            self.finish_task,
            self.power_control,
            self.firmware_start,
            self.bring_up_control,
            self.inject_expectation,
            self.power_status,
            self.firmware_versions,
            self.observe_power,
            self.observe_reachability,
            self.observe_firmware,
            self.observe_bring_up,
        ]


async def _task_operation(session: AsyncSession, task_id: uuid.UUID) -> tuple[str, str] | None:
    """The task's (operation type, code): what a PowerControl without parameters runs."""
    task = await session.get(Task, task_id)
    return (task.operation_type, task.operation_code) if task is not None else None


async def _task_status(session: AsyncSession, task_id: uuid.UUID) -> str:
    task = await session.get(Task, task_id, populate_existing=True)
    return task.status if task is not None else TaskStatus.UNKNOWN.value
