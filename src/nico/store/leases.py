"""Worker leases: a job that one worker process at a time should run (the state sync)
is claimed by a compare-and-set on its lease row, renewed while it runs, and taken over
by another worker once it expires (a holder that crashed stops renewing)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import CursorResult, delete, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nico.store.models import WorkerLease, utcnow


async def claim_lease(
    session: AsyncSession, name: str, holder: str, ttl: float, *, now: datetime | None = None
) -> bool:
    """Take or renew the lease for `ttl` seconds; False while another holder's is live."""
    now = now or utcnow()
    until = now + timedelta(seconds=ttl)
    renewed = await session.execute(
        update(WorkerLease)
        .where(
            WorkerLease.name == name,
            or_(WorkerLease.holder == holder, WorkerLease.expires_at <= now),
        )
        .values(holder=holder, expires_at=until)
    )
    assert isinstance(renewed, CursorResult)
    if renewed.rowcount == 1:
        return True
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    created = await session.execute(
        insert(WorkerLease)
        .values(name=name, holder=holder, expires_at=until)
        .on_conflict_do_nothing()
    )
    assert isinstance(created, CursorResult)
    return created.rowcount == 1


async def release_lease(session: AsyncSession, name: str, holder: str) -> None:
    """Give the lease up (a worker shutting down), so another takes over at once."""
    await session.execute(
        delete(WorkerLease).where(WorkerLease.name == name, WorkerLease.holder == holder)
    )
