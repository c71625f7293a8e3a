"""What a task reads from its trays goes to the same observed state the state sync
keeps (`nico.store.observations`), with the task and who asked for it on each history
row: the power states it read, and its power reads that failed (the BMC's error or
silence, never an outage of nico's own services), so a tray a task could not read shows
`Unknown` with the error at once, as after a failed sync read.

A step reads many trays, often many times (polls), so a step's reads are buffered and
written together every `FLUSH_EVERY` seconds, and once more before the step's activity
returns (so a finished task's trays already show what it saw). A write that cannot
reach the database after the engine's usual wait is logged and dropped: an observation
is never worth failing a tray for, and the next read (or sync pass) records it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nico.engine import infra
from nico.engine.infra import InfrastructureUnavailable, retrying
from nico.hardware.interface import FirmwareInventory
from nico.services import Services
from nico.store import observations, stalls
from nico.store.history import HistorySource, Origin
from nico.store.models import Task, utcnow

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.25


@dataclass
class _Pending:
    power: list[observations.PowerReading] = field(default_factory=list)
    firmware: list[observations.FirmwareReading] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.power or self.firmware)


class TaskObservations:
    """Records a task's reads; `batched` buffers them until `flush` (or the timer)."""

    def __init__(self, services: Services, task_id: str | None, *, batched: bool) -> None:
        self._services = services
        self._task_id = uuid.UUID(task_id) if task_id else None
        self._batched = batched
        self._origin: Origin | None = None
        self._pending = _Pending()
        self._timer: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()

    # `at` is when the read was sent (its request left nico), default now: readings are
    # ordered by it, so a slow answer never undoes a read sent after it.

    async def power(self, tray_id: str, state: str, at: datetime | None = None) -> None:
        reading = observations.PowerReading(uuid.UUID(tray_id), at or utcnow(), state=state)
        self._pending.power.append(reading)
        await self._soon()

    async def power_failed(self, tray_id: str, error: str, at: datetime | None = None) -> None:
        """A power read the BMC answered with an error, or did not answer: recorded as the
        state sync records one (the tray shows `Unknown` with the error and keeps its last
        good value), batched with the step's other reads. Never an outage of nico's own
        services: the caller tells them apart."""
        reading = observations.PowerReading(uuid.UUID(tray_id), at or utcnow(), error=error)
        self._pending.power.append(reading)
        await self._soon()

    async def inventory(
        self, tray_id: str, inventory: FirmwareInventory, at: datetime | None = None
    ) -> None:
        """A whole firmware inventory read (a firmware step reads one before and after
        its update, so compliance and `observedAt` move with it)."""
        reading = observations.FirmwareReading(
            uuid.UUID(tray_id),
            at or utcnow(),
            components=inventory.components,
            version=inventory.version,
        )
        self._pending.firmware.append(reading)
        await self._soon()

    async def _soon(self) -> None:
        if not self._batched:
            await self.flush()
        elif self._timer is None or self._timer.done():
            # The timer writes for every tray of the step: none of their waits or outages.
            self._timer = asyncio.create_task(self._flush_later(), context=infra.detached())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_EVERY)
        await self.flush()

    async def close(self) -> None:
        """Write what is left (the end of a step)."""
        await self.flush()  # after a write the timer may be in the middle of
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer

    async def flush(self) -> None:
        with stalls.waiting():  # also the wait for a write in progress
            async with self._writing:
                pending, self._pending = self._pending, _Pending()
                if not pending:
                    return
                try:
                    await retrying(lambda: self._write(pending))
                except InfrastructureUnavailable as exc:
                    log.warning("task observations of %s not recorded: %s", self._task_id, exc)

    async def _write(self, pending: _Pending) -> None:
        async with self._services.db.session() as session:
            await observations.begin_recording(session)
            origin = await self._origin_in(session)
            await observations.record_power(session, pending.power, origin)
            await observations.record_firmware(session, pending.firmware, origin)

    async def _origin_in(self, session: AsyncSession) -> Origin:
        if self._origin is None:
            created_by = None
            if self._task_id is not None:
                created_by = await session.scalar(
                    select(Task.created_by).where(Task.id == self._task_id)
                )
            self._origin = Origin(HistorySource.TASK, self._task_id, created_by)
        return self._origin
