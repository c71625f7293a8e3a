"""The operation ledger: hardware side effects already accepted, so none is sent twice.

An activity retried after a worker crash (or a heartbeat timeout) looks up its key first
and, if the command was accepted before, returns the recorded result instead of acting.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nico.store.models import OperationLedger


async def recorded(session: AsyncSession, key: str) -> dict[str, Any] | None:
    """The result recorded under `key`, or None when nothing was accepted yet."""
    result = await session.execute(select(OperationLedger.result).where(OperationLedger.key == key))
    row = result.first()
    return None if row is None else dict(row[0] or {})


async def record(
    session: AsyncSession, key: str, tray_id: str, action: str, result: dict[str, Any]
) -> None:
    """Record an accepted side effect (a concurrent duplicate record is ignored)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(OperationLedger)
        .values(key=key, tray_id=uuid.UUID(tray_id), action=action, result=result)
        .on_conflict_do_nothing()
    )


async def count_for_tray(session: AsyncSession, tray_id: uuid.UUID, action: str) -> int:
    """How many accepted side effects of `action` the ledger holds for a tray."""
    result = await session.execute(
        select(OperationLedger.key).where(
            OperationLedger.tray_id == tray_id, OperationLedger.action == action
        )
    )
    return len(result.all())
