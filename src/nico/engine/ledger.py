"""The operation ledger: hardware side effects sent under a key, so none is sent twice.

An activity retried after a worker crash, an attempt timeout or a heartbeat timeout
looks its key up first. An *accepted* entry means the BMC took the command: the retry
returns the recorded result instead of acting. For power codes that are not idempotent
(a cycle or reset) the activity writes an *intent* before sending; a retry that finds an
intent without acceptance cannot know whether the BMC acted, and must not send a second
cycle (docs/engine.md, "Side effects happen once").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nico.store.models import OperationLedger, utcnow

# Power codes whose repeat is harmless: the backends treat "already in that state" as a
# no-op. Every other code (restart, force_restart, warm_reset, cold_reset) cycles the
# tray each time it is sent.
RESENDABLE_POWER_CODES = frozenset({"power_on", "force_power_on", "power_off", "force_power_off"})


@dataclass(frozen=True, slots=True)
class Entry:
    """What the ledger holds under a key: the result, and whether the BMC accepted it."""

    result: dict[str, Any]
    accepted: bool


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def lookup(session: AsyncSession, key: str) -> Entry | None:
    """The entry under `key`, or None when nothing was sent (or intended) yet."""
    result = await session.execute(
        select(OperationLedger.result, OperationLedger.accepted).where(OperationLedger.key == key)
    )
    row = result.first()
    return None if row is None else Entry(dict(row[0] or {}), row[1] is not None)


async def lookup_many(session: AsyncSession, keys: list[str]) -> dict[str, Entry]:
    """`lookup` for many keys in one statement (keys with nothing sent are left out)."""
    result = await session.execute(
        select(OperationLedger.key, OperationLedger.result, OperationLedger.accepted).where(
            OperationLedger.key.in_(keys)
        )
    )
    return {key: Entry(dict(value or {}), accepted is not None) for key, value, accepted in result}


async def recorded(session: AsyncSession, key: str) -> dict[str, Any] | None:
    """The result accepted under `key`, or None when nothing was accepted yet."""
    entry = await lookup(session, key)
    return entry.result if entry is not None and entry.accepted else None


async def intend(
    session: AsyncSession, key: str, tray_id: str, action: str, result: dict[str, Any]
) -> None:
    """Record that a command is about to be sent (kept if one is already there)."""
    await session.execute(
        _insert(session)(OperationLedger)
        .values(key=key, tray_id=uuid.UUID(tray_id), action=action, result=result)
        .on_conflict_do_nothing()
    )


async def forget(session: AsyncSession, key: str) -> None:
    """Drop an intent the backend answered with an error: it says nothing was done, so a
    retry may send the command again. An accepted entry is never dropped."""
    await session.execute(
        delete(OperationLedger).where(
            OperationLedger.key == key, OperationLedger.accepted.is_(None)
        )
    )


async def record(
    session: AsyncSession, key: str, tray_id: str, action: str, result: dict[str, Any]
) -> None:
    """Record an accepted side effect, turning its intent (if any) into acceptance."""
    values = {"key": key, "tray_id": uuid.UUID(tray_id), "action": action, "result": result}
    now = utcnow()
    await session.execute(
        _insert(session)(OperationLedger)
        .values(**values, accepted=now)
        .on_conflict_do_update(index_elements=["key"], set_={"result": result, "accepted": now})
    )


async def record_many(
    session: AsyncSession, entries: list[tuple[str, str, str, dict[str, Any]]]
) -> None:
    """`record` for many (key, tray id, action, result) entries in one statement; a key
    given twice keeps its last entry."""
    now = utcnow()
    rows = {
        key: {
            "key": key,
            "tray_id": uuid.UUID(tray_id),
            "action": action,
            "result": result,
            "created": now,
            "accepted": now,
        }
        for key, tray_id, action, result in entries
    }
    if not rows:
        return
    statement = _insert(session)(OperationLedger).values(list(rows.values()))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"result": statement.excluded.result, "accepted": statement.excluded.accepted},
        )
    )


async def count_for_tray(session: AsyncSession, tray_id: uuid.UUID, action: str) -> int:
    """How many accepted side effects of `action` the ledger holds for a tray."""
    result = await session.execute(
        select(OperationLedger.key).where(
            OperationLedger.tray_id == tray_id,
            OperationLedger.action == action,
            OperationLedger.accepted.is_not(None),
        )
    )
    return len(result.all())


# --- retention (`nico.tasks.key_retention`) ----------------------------------------------


def task_of(key: str) -> uuid.UUID | None:
    """The task a key belongs to: every key starts with its task's id (`StepContext.
    ledger_key`, `step_history.history_key`); None for a key that does not."""
    try:
        return uuid.UUID(key.split("/", 1)[0])
    except ValueError:
        return None


def oldest_statement(
    *, before: datetime, after: tuple[datetime, str] | None, limit: int
) -> Select[datetime, str]:
    """Up to `limit` (created, key) of entries created before `before`, oldest first,
    from just past `after`: one range of the (created, key) index."""
    query = select(OperationLedger.created, OperationLedger.key).where(
        OperationLedger.created < before
    )
    if after is not None:
        query = query.where(tuple_(OperationLedger.created, OperationLedger.key) > after)
    return query.order_by(OperationLedger.created, OperationLedger.key).limit(limit)


async def oldest(
    session: AsyncSession, *, before: datetime, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[datetime, str]]:
    """See `oldest_statement`."""
    rows = await session.execute(oldest_statement(before=before, after=after, limit=limit))
    return [(created, key) for created, key in rows.all()]


async def delete_entries(session: AsyncSession, keys: list[str]) -> None:
    await session.execute(delete(OperationLedger).where(OperationLedger.key.in_(keys)))
