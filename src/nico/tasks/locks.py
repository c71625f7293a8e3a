"""Per-rack locks for the conflict check, queue promotion and expiry.

PostgreSQL: `pg_advisory_xact_lock` per rack inside the transaction, so API replicas and
workers on any host serialize on the same rack and the lock ends with the commit.
SQLite: the transaction starts with `BEGIN IMMEDIATE`, which takes the database's write
lock at once, so processes on one SQLite file (`nico serve` runs the API and the worker in
two) serialize too; SQLite has no finer lock. An in-process asyncio lock per rack is taken
first, so coroutines of one process queue on the rack without holding a connection each.
A rack's local lock lives only while someone holds or awaits it.

Keys are taken in one statement whatever the number of racks (a 100-rack submission is
one round trip, not 100), always in ascending key order so two multi-rack submissions
cannot deadlock.
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
        if db.is_sqlite:
            # Python's sqlite3 opens no transaction for this statement, so this one is
            # the transaction the session commits.
            await session.execute(text("BEGIN IMMEDIATE"))
        elif ordered:
            # unnest yields the array in order and each row locks before the next.
            keys = sorted(advisory_key(rack_id) for rack_id in ordered)
            await session.execute(
                text(
                    "SELECT count(pg_advisory_xact_lock(k)) "
                    "FROM unnest(CAST(:keys AS bigint[])) AS k"
                ),
                {"keys": keys},
            )
        yield session
