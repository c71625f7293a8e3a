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

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from nico import logs, metrics
from nico.domain import TaskStatus
from nico.engine import infra, ledger, messages
from nico.engine import payloads as p
from nico.engine.capabilities import TargetTray, capability_gaps, uncovered_trays
from nico.engine.infra import InfrastructureUnavailable, retrying
from nico.engine.policy import HEARTBEAT_EVERY, attempt_deadline
from nico.engine.retries import INFRA_ERROR_TYPE
from nico.hardware.interface import HardwareError, TrayBackend, TrayRef
from nico.hardware.registry import BackendRegistry
from nico.rules.durations import format_seconds
from nico.rules.model import RuleDefinition
from nico.services import Services
from nico.store.models import Task, Tray
from nico.store.tasks import save_running_report, transition_task

log = logging.getLogger(__name__)
T = TypeVar("T")

# Waits before each look at a reset marker after a cycle was accepted (seconds).
CYCLE_CHECK_PAUSES = (0.0, 0.5, 1.0, 2.0)


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


class AttemptExpired(Exception):
    """The attempt used up its time; its work was cancelled before Temporal gave up on it."""


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
                    outage = infra.waiting_out()
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


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, HardwareError | InfrastructureUnavailable):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class EngineActivities:
    """Activities bound to one process's services (database, secrets, backends)."""

    def __init__(self, services: Services, on_task_finished: TaskFinishedHook | None) -> None:
        self._services = services
        self._registry: BackendRegistry = services.backends
        self._on_task_finished = on_task_finished

    # --- task rows --------------------------------------------------------------------

    @activity.defn(name=p.BEGIN_TASK)
    async def begin_task(self, data: p.BeginTaskInput) -> p.BeginTaskResult:
        """Pre-dispatch capability check, then Pending -> Running with the initial report."""
        async with attempt():
            return await self._begin_task(data)

    async def _begin_task(self, data: p.BeginTaskInput) -> p.BeginTaskResult:
        task_id = uuid.UUID(data.task_id)
        rule = RuleDefinition.from_wire(data.rule_definition)
        refs = await retrying(lambda: self._registry.tray_refs(t.id for t in data.trays))
        for ref in list(refs.values())[:1]:
            logs.remember_rack(ref.rack_id, data.task_id)
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
        async with attempt():
            await self._db(
                lambda session: save_running_report(
                    session, uuid.UUID(data.task_id), data.report, data.message
                )
            )

    @activity.defn(name=p.FINISH_TASK)
    async def finish_task(self, data: p.FinishTaskInput) -> bool:
        """Running (or Pending) -> final status (CAS), then tell the task manager the rack
        freed up."""
        async with attempt():
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
        """One transaction, made again (whole) after a database outage."""

        async def once() -> T:
            async with self._services.db.session() as session:
                return await work(session)

        return await retrying(once)

    # --- hardware helpers ---------------------------------------------------------------

    async def _target(self, tray_id: str) -> tuple[TrayRef, TrayBackend]:
        ref = await retrying(lambda: self._registry.tray_ref(tray_id))
        logs.remember_rack(ref.rack_id)  # later lines of this task name its rack
        return ref, self._registry.backend_for(ref)

    async def _record_power(self, tray_id: str, state: str) -> None:
        """Observed power state goes to the tray row, so GET /tray shows it."""
        await self._db(
            lambda session: session.execute(
                update(Tray)
                .where(Tray.id == uuid.UUID(tray_id), Tray.power_state != state)
                .values(power_state=state)
            )
        )

    async def _record_firmware(self, tray_id: str, version: str) -> None:
        """Observed firmware version goes to the tray row, so GET /tray shows it."""
        await self._db(
            lambda session: session.execute(
                update(Tray)
                .where(Tray.id == uuid.UUID(tray_id), Tray.firmware_version != version)
                .values(firmware_version=version)
            )
        )

    # --- side effects -----------------------------------------------------------------

    @activity.defn(name=p.POWER_CONTROL)
    async def power_control(self, data: p.PowerCommand) -> p.PowerResult:
        """Send a power code once. A cycle (restart, resets) is verified by the tray's
        reset marker (`TrayBackend.reset_marker`), read before it is sent and kept with its
        intent in the ledger: accepted but the marker did not move is a failed attempt; a
        retry that finds the intent but no acceptance reads the marker again and knows
        whether the earlier attempt cycled the tray (done) or not (sent now). Without a
        marker the outcome stays unknown and the tray fails saying so; never a silent
        success, never a second cycle."""
        async with hardware_attempt():
            key = data.ledger_key
            cycle = data.code not in ledger.RESENDABLE_POWER_CODES
            entry = await self._db(lambda session: ledger.lookup(session, key))
            if entry is not None and entry.accepted:
                return p.PowerResult()
            ref, backend = await self._target(data.tray_id)
            if entry is not None and cycle:
                before = entry.result.get("marker")
                if before is None:
                    log.warning("%s under %s: outcome unknown, not resent", data.code, key)
                    raise HardwareError(messages.outcome_unknown(data.code), retryable=False)
                if await retrying(lambda: backend.reset_marker(ref)) != before:
                    log.warning("%s under %s: the cut-off attempt did cycle", data.code, key)
                    await self._db(
                        lambda session: ledger.record(session, key, data.tray_id, "power", {})
                    )
                    return p.PowerResult()
                # The marker did not move: the cut-off attempt never reached the BMC.
                await self._db(lambda session: ledger.forget(session, key))
            marker: str | None = None
            if cycle:
                marker = await retrying(lambda: backend.reset_marker(ref))
                intent = {"code": data.code, "marker": marker}
                await self._db(
                    lambda session: ledger.intend(session, key, data.tray_id, "power", intent)
                )
            try:
                await retrying(lambda: backend.power_control(ref, data.code, operation_key=key))
            except (HardwareError, InfrastructureUnavailable):
                # The backend answered, or could not even start (its own store was down):
                # nothing was done, so a retry may send it again. Anything else (crash,
                # cancel, the attempt's deadline) keeps the intent.
                if cycle:
                    await self._db(lambda session: ledger.forget(session, key))
                raise
            if marker is not None and not await self._cycled(backend, ref, marker):
                # Accepted, yet the tray did not cycle: the retry may send it again.
                await self._db(lambda session: ledger.forget(session, key))
                raise HardwareError(messages.cycle_not_observed(data.code))
            await self._db(
                lambda session: ledger.record(
                    session, key, data.tray_id, "power", {"code": data.code}
                )
            )
            return p.PowerResult()

    async def _cycled(self, backend: TrayBackend, ref: TrayRef, before: str) -> bool:
        """Whether the reset marker moved from `before` (a BMC may take a moment)."""
        for pause in CYCLE_CHECK_PAUSES:
            await asyncio.sleep(pause)
            if await retrying(lambda: backend.reset_marker(ref)) != before:
                return True
        return False

    @activity.defn(name=p.FIRMWARE_START)
    async def firmware_start(self, data: p.FirmwareCommand) -> str:
        async with hardware_attempt():
            done = await self._db(lambda session: ledger.recorded(session, data.ledger_key))
            if done is not None:
                return str(done["job_id"])
            ref, backend = await self._target(data.tray_id)
            job_id = await retrying(
                lambda: backend.firmware_start(
                    ref, data.version, tuple(data.targets), operation_key=data.ledger_key
                )
            )
            result = {"job_id": job_id, "version": data.version, "operation": data.operation}
            await self._db(
                lambda session: ledger.record(
                    session, data.ledger_key, data.tray_id, "firmware", result
                )
            )
            return job_id

    @activity.defn(name=p.BRING_UP_CONTROL)
    async def bring_up_control(self, data: p.TrayQuery) -> None:
        async with hardware_attempt():
            ref, backend = await self._target(data.tray_id)
            await retrying(lambda: backend.bring_up_control(ref))

    @activity.defn(name=p.INJECT_EXPECTATION)
    async def inject_expectation(self, data: p.TrayQuery) -> None:
        async with hardware_attempt():
            ref, backend = await self._target(data.tray_id)
            await retrying(lambda: backend.inject_expectation(ref))

    # --- reads (retried) ----------------------------------------------------------------

    @activity.defn(name=p.POWER_STATUS)
    async def power_status(self, data: p.TrayQuery) -> str:
        async with hardware_attempt():
            ref, backend = await self._target(data.tray_id)
            state = await retrying(lambda: backend.power_status(ref))
            await self._record_power(data.tray_id, state.value)
            return str(state.value)

    @activity.defn(name=p.FIRMWARE_VERSIONS)
    async def firmware_versions(self, data: p.TraysQuery) -> list[str]:
        async with hardware_attempt():
            return [await self._read_version(tray_id) for tray_id in data.tray_ids]

    async def _read_version(self, tray_id: str) -> str:
        ref, backend = await self._target(tray_id)
        version = await retrying(lambda: backend.firmware_version(ref))
        await self._record_firmware(tray_id, version)
        return version

    # --- polls (one attempt; a failure is an answer, not an error) ------------------------

    async def _observe(self, work: Callable[[], Awaitable[p.Observation]]) -> p.Observation:
        """One poll: the answer, or why it could not be read and whether waiting helps."""
        try:
            async with attempt():
                return await work()
        except Exception as exc:
            return _failed_observation(exc)

    @activity.defn(name=p.OBSERVE_POWER)
    async def observe_power(self, data: p.TrayQuery) -> p.Observation:
        async def work() -> p.Observation:
            ref, backend = await self._target(data.tray_id)
            state = await retrying(lambda: backend.power_status(ref))
            await self._record_power(data.tray_id, state.value)
            return p.Observation(state=state.value)

        return await self._observe(work)

    @activity.defn(name=p.OBSERVE_REACHABILITY)
    async def observe_reachability(self, data: p.ReachabilityQuery) -> list[list[p.Observation]]:
        """Per group, one answer per tray: all trays of a need-all group (concurrently);
        for the others, trays one by one until one answers (the rest are `unchecked`)."""
        refs: dict[str, TrayRef] = {}

        async def one(tray_id: str) -> p.Observation:
            ref = refs.get(tray_id)
            if ref is None:
                return p.Observation(error="tray no longer exists", retryable=False)
            try:
                if await retrying(lambda: self._registry.backend_for(ref).reachable(ref)):
                    return p.Observation(state=p.REACHABLE)
            except Exception as exc:
                return _failed_observation(exc)
            return p.Observation(error="BMC unreachable")

        async def group(members: p.ReachGroup) -> list[p.Observation]:
            if members.need_all:
                return list(await asyncio.gather(*(one(t) for t in members.tray_ids)))
            answers: list[p.Observation] = []
            for tray_id in members.tray_ids:
                if any(a.state == p.REACHABLE for a in answers):
                    answers.append(p.Observation(state="unchecked"))
                else:
                    answers.append(await one(tray_id))
            return answers

        try:
            async with attempt():
                refs = await retrying(
                    lambda: self._registry.tray_refs(t for g in data.groups for t in g.tray_ids)
                )
                return [await group(g) for g in data.groups]
        except InfrastructureUnavailable as exc:  # not an answer about any BMC
            down = p.Observation(error=str(exc), infra=True)
            return [[down for _ in g.tray_ids] for g in data.groups]

    @activity.defn(name=p.OBSERVE_FIRMWARE)
    async def observe_firmware(self, data: p.FirmwareQuery) -> p.Observation:
        async def work() -> p.Observation:
            ref, backend = await self._target(data.tray_id)
            job = await retrying(lambda: backend.firmware_status(ref, data.job_id))
            if job.state.value == "Completed":
                version = await retrying(lambda: backend.firmware_version(ref))
                await self._record_firmware(data.tray_id, version)
            return p.Observation(state=job.state.value, percent=job.percent, detail=job.message)

        return await self._observe(work)

    @activity.defn(name=p.OBSERVE_BRING_UP)
    async def observe_bring_up(self, data: p.TrayQuery) -> p.Observation:
        async def work() -> p.Observation:
            ref, backend = await self._target(data.tray_id)
            return p.Observation(state=(await retrying(lambda: backend.bring_up_status(ref))).value)

        return await self._observe(work)

    def all(self) -> list[Callable[..., Any]]:
        return [
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


def _failed_observation(exc: Exception) -> p.Observation:
    """A poll that could not be read: "not yet", unless the backend says waiting cannot
    help (bad credentials, untrusted TLS, a job or tray that no longer exists)."""
    if isinstance(exc, HardwareError):
        return p.Observation(error=str(exc), retryable=exc.retryable)
    if isinstance(exc, AttemptExpired):
        return p.Observation(error=str(exc))
    if isinstance(exc, InfrastructureUnavailable):
        return p.Observation(error=str(exc), infra=True)
    log.warning("poll failed: %s", _error_text(exc))
    return p.Observation(error=_error_text(exc))


async def _task_status(session: AsyncSession, task_id: uuid.UUID) -> str:
    task = await session.get(Task, task_id, populate_existing=True)
    return task.status if task is not None else TaskStatus.UNKNOWN.value
