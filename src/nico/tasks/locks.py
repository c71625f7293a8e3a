"""Per-rack locks for the conflict check, queue promotion and expiry.

PostgreSQL: `pg_advisory_xact_lock` per rack inside the transaction, so API replicas and
workers on any host serialize on the same rack and the lock ends with the commit.
SQLite: an in-process asyncio lock per rack, held until the transaction has committed.
That is correct for one process (what `nico serve` runs); several processes on one SQLite
file are not supported for task submission (`nico api` / `nico worker` warn about it).
A rack's local lock lives only while someone holds or awaits it.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from nico.store.db import Database

# Namespace mixed into every advisory-lock key so ours never collide with another
# application's advisory locks in a shared database.
_LOCK_NAMESPACE = 0x6E69636F  # "nico"

# Weak values: a lock nobody holds or waits for is dropped, so the map does not grow with
# every rack (and every event loop) ever locked.
_local_locks: weakref.WeakValueDictionary[tuple[int, uuid.UUID], asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


def advisory_key(rack_id: uuid.UUID) -> int:
    """A signed 64-bit key for `pg_advisory_xact_lock`, stable for a rack id."""
    value = (rack_id.int >> 64) ^ (rack_id.int & 0xFFFFFFFFFFFFFFFF) ^ _LOCK_NAMESPACE
    return value - (1 << 64) if value >= (1 << 63) else value


def _local_lock(rack_id: uuid.UUID) -> asyncio.Lock:
    # asyncio locks belong to one event loop; key by loop so tests with fresh loops work.
    key = (id(asyncio.get_running_loop()), rack_id)
    lock = _local_locks.get(key)
    if lock is None:
        lock = asyncio.Lock()
        _local_locks[key] = lock
    return lock


@asynccontextmanager
async def locked_racks(db: Database, rack_ids: Iterable[uuid.UUID]) -> AsyncIterator[AsyncSession]:
    """A session whose transaction holds the lock of every given rack until it commits.

    Locks are taken in sorted order so two multi-rack submissions cannot deadlock.
    """
    ordered = sorted(set(rack_ids))
    async with AsyncExitStack() as stack:
        if db.is_sqlite:
            for rack_id in ordered:
                await stack.enter_async_context(_local_lock(rack_id))
        session = await stack.enter_async_context(db.session())
        if not db.is_sqlite:
            for rack_id in ordered:
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(rack_id)}
                )
        yield session
