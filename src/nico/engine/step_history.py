"""A finished power or firmware step writes one history row per tray: from → to, when,
the task and who asked for it, and the tray's outcome (docs/state.md, "History").

Written by the `run_step` activity once the step's outcome is known and its reads are
recorded (so `to` is what the step last saw), all trays of the step in one transaction
with a ledger entry for the step, so an activity attempt that is retried after it wrote
them does not write them twice. Observations (the reads themselves, `outcome` null) are
`nico.engine.observed`'s; these rows say what a task did to the tray and how it ended.
A write that cannot reach the database after the engine's usual wait is logged and
dropped: history never fails a step.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nico.domain import AC_POWER_CYCLE, ComponentType
from nico.engine import ledger
from nico.engine import payloads as p
from nico.engine.contracts import TrayTarget
from nico.engine.infra import InfrastructureUnavailable, retrying
from nico.services import Services
from nico.store.history import HistoryEntry, HistoryKind, HistorySource, append_history
from nico.store.models import Task, Tray, utcnow

log = logging.getLogger(__name__)

# A tray's outcome in the step runner -> the history row's outcome.
SUCCEEDED, FAILED, SKIPPED, NOT_STARTED, TERMINATED = (
    "Succeeded",
    "Failed",
    "Skipped",
    "NotStarted",
    "Terminated",
)


@dataclass(frozen=True)
class TrayEnd:
    """How one tray of the step ended, as the step runner knows it."""

    tray: TrayTarget
    status: str  # the runner's: pending | running | completed | failed | skipped
    reason: str
    before: str | None
    after: str | None


def outcome_of(status: str, step_status: str) -> str:
    """The row's outcome: what the tray did, or why it did not get to."""
    if status == "completed":
        return SUCCEEDED
    if status == "skipped":
        return SKIPPED
    if status == "failed":
        return FAILED
    if step_status == "cancelled":
        return TERMINATED
    # Started and cut by the step's timeout, or never started (fail-fast, timeout).
    return FAILED if status == "running" else NOT_STARTED


def fed_trays(step: p.StepInput, history: tuple[HistoryKind, str] | None) -> list[TrayTarget]:
    """The trays an AC power cycle step of shelves also took through Off and back: the
    task's Compute and NVLSwitch trays (its PowerControl verified each one's cycle)."""
    if history is None or history[1] != AC_POWER_CYCLE:
        return []
    if step.trays and any(t.type != ComponentType.POWERSHELF.value for t in step.trays):
        return []
    fed = (ComponentType.COMPUTE.value, ComponentType.NVLSWITCH.value)
    return [t for t in step.task_trays if t.type in fed]


def fed_ends(
    fed: Sequence[TrayTarget],
    result: p.StepResult,
    before: dict[str, str | None],
    after: dict[str, str | None],
) -> list[TrayEnd]:
    """The fed trays' rows: their outcome is the shelves' step's (the shelf's command
    verified their cycles, or failed naming the ones that did not cycle)."""
    status = {"completed": "completed", "cancelled": "pending"}.get(result.status, "failed")
    reason = "" if status == "completed" else (result.error or "")
    return [TrayEnd(t, status, reason, before.get(t.id), after.get(t.id)) for t in fed]


def history_key(step: p.StepInput) -> str:
    return f"{step.task_id}/stage-{step.stage}/step-{step.position}/history"


async def read_states(
    services: Services, kind: HistoryKind, tray_ids: Sequence[str]
) -> dict[str, str | None]:
    """The trays' shown power state or firmware version (one query); nothing when nico's
    database stays out of reach (the rows then leave the value out)."""
    column = Tray.power_state if kind is HistoryKind.POWER else Tray.firmware_version

    async def read() -> dict[str, str | None]:
        async with services.db.session() as session:
            rows = await session.execute(
                select(Tray.id, column).where(Tray.id.in_([uuid.UUID(t) for t in tray_ids]))
            )
            return {str(tray_id): value for tray_id, value in rows.all()}

    try:
        return await retrying(read)
    except InfrastructureUnavailable as exc:
        log.warning("tray states for history not read: %s", exc)
        return {}


async def record_step(
    services: Services,
    step: p.StepInput,
    kind: HistoryKind,
    code: str,
    step_status: str,
    ends: Sequence[TrayEnd],
) -> None:
    """One row per tray of a finished step, once (see the module docstring)."""
    if not ends:
        return
    key = history_key(step)
    at = utcnow()

    async def write() -> None:
        async with services.db.session() as session:
            if await ledger.recorded(session, key) is not None:
                return
            created_by = await session.scalar(
                select(Task.created_by).where(Task.id == uuid.UUID(step.task_id))
            )
            site_rack = await _site_and_racks(session, [e.tray.id for e in ends])
            entries = []
            for end in ends:
                if end.tray.id not in site_rack:
                    continue  # the tray was deleted meanwhile: its history has no rack
                site_id, rack_id = site_rack[end.tray.id]
                outcome = outcome_of(end.status, step_status)
                entries.append(
                    HistoryEntry(
                        site_id=site_id,
                        rack_id=rack_id,
                        tray_id=uuid.UUID(end.tray.id),
                        kind=kind,
                        at=at,
                        source=HistorySource.TASK,
                        from_value=end.before,
                        to_value=end.after,
                        task_id=uuid.UUID(step.task_id),
                        created_by=created_by,
                        outcome=outcome,
                        message=f"{code}: {end.reason}" if end.reason else code,
                    )
                )
            await append_history(session, entries)
            await ledger.record(session, key, ends[0].tray.id, "history", {"rows": len(entries)})

    try:
        await retrying(write)
    except InfrastructureUnavailable as exc:
        log.warning("history of %s not recorded: %s", key, exc)


async def _site_and_racks(
    session: AsyncSession, tray_ids: Sequence[str]
) -> dict[str, tuple[uuid.UUID, uuid.UUID]]:
    rows = await session.execute(
        select(Tray.id, Tray.site_id, Tray.rack_id).where(
            Tray.id.in_([uuid.UUID(t) for t in tray_ids])
        )
    )
    return {str(tray_id): (site_id, rack_id) for tray_id, site_id, rack_id in rows.all()}
