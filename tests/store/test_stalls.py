"""The store marks the time a caller waits on the database (`nico.store.stalls`): a
deadline that cuts a call stalled behind another writer's lock is seen as such, one that
cuts anything else is not. The lock is a real one on a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from nico.store import stalls
from nico.store.batching import Batcher
from nico.store.db import Database
from tests.support.sqlite_lock import hold_write_lock


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'stalls.db'}")
    async with database.session() as session:
        await session.execute(text("CREATE TABLE marks (name TEXT)"))
    yield database
    await database.dispose()


def waited(cut: tuple[float, float] | None) -> float | None:
    return None if cut is None else cut[1] - cut[0]


async def write(db: Database, name: str) -> None:
    async with db.session() as session:
        await session.execute(text("INSERT INTO marks VALUES (:name)"), {"name": name})


async def test_a_write_cut_while_it_waits_for_the_lock_is_a_stall(
    db: Database, tmp_path: Path
) -> None:
    """The write waits behind a 2 s lock and a 0.6 s deadline cuts it: the scope knows it
    was cut 0.6 s into a database wait, although the cancel itself got out only when
    the lock was released (the driver's rollback waits behind the same lock)."""
    holder = hold_write_lock(str(tmp_path / "stalls.db"), 2.0)
    with stalls.scope() as scope:
        deadline = asyncio.timeout(0.6)
        with pytest.raises(TimeoutError):
            async with deadline:
                await write(db, "cut")
        stalled = waited(scope.take(deadline.when()))
    holder.join()
    assert stalled is not None and 0.5 <= stalled <= 0.7, stalled
    assert scope.take() is None  # accounted for once


async def test_a_cut_outside_the_database_or_after_a_later_wait_is_no_stall(
    db: Database, tmp_path: Path
) -> None:
    with stalls.scope() as scope:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await write(db, "fast")
                await asyncio.sleep(5)  # a slow BMC, after the database answered
        assert scope.take() is None
        holder = hold_write_lock(str(tmp_path / "stalls.db"), 0.5)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await write(db, "cut")
        holder.join()
        await write(db, "after")  # the scope went on: that cut was not where it ended
        assert scope.take() is None


async def test_a_caller_queued_behind_a_stalled_batch_is_cut_in_a_database_wait(
    db: Database, tmp_path: Path
) -> None:
    """One batch at a time: the first caller's batch waits behind a 2 s lock, the second
    caller queues behind it and its 0.6 s deadline cuts it. Only the second caller was
    cut waiting on the database; the batch ran in neither caller's scope."""

    async def run(names: list[str]) -> dict[str, None]:
        for name in names:
            await write(db, name)
        return dict.fromkeys(names)

    batcher: Batcher[str, None] = Batcher(run)
    holder = hold_write_lock(str(tmp_path / "stalls.db"), 2.0)

    async def first() -> float | None:
        with stalls.scope() as scope:
            await batcher("first")
            return waited(scope.take())

    first_call = asyncio.create_task(first())
    await asyncio.sleep(0.05)  # its batch has started and waits for the lock
    with stalls.scope() as scope:
        deadline = asyncio.timeout(0.6)
        with pytest.raises(TimeoutError):
            async with deadline:
                await batcher("second")
        stalled = waited(scope.take(deadline.when()))
    assert stalled is not None and 0.45 <= stalled <= 0.7, stalled
    assert await first_call is None
    holder.join()


async def test_a_session_cut_while_the_pool_has_no_connection_is_a_stall(
    any_database: Database,
) -> None:
    """Every connection of the pool is taken (5 + 10 overflow) and a session waits for
    one (pool_timeout, 30 s) until a 0.6 s deadline cuts it: a database wait, on SQLite
    as on PostgreSQL."""
    db = any_database
    async with contextlib.AsyncExitStack() as taken:
        for _ in range(db.engine.pool.size() + 10):  # type: ignore[attr-defined]
            await taken.enter_async_context(db.engine.connect())
        with stalls.scope() as scope:
            deadline = asyncio.timeout(0.6)
            with pytest.raises(TimeoutError):
                async with deadline, db.session() as session:
                    await session.execute(text("SELECT 1"))
            stalled = waited(scope.take(deadline.when()))
    assert stalled is not None and 0.5 <= stalled <= 0.7, stalled
