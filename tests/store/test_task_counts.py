"""The task counters behind `GET /task`'s total and /metrics stay exact, on SQLite and
PostgreSQL: through creation (one task, a batch, a bulk import), every status transition,
cancel, retention prune, a site's deletion, a rolled-back write, concurrent creates and
the sweep's compaction running alongside them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from nico.domain import ALLOWED_TASK_TRANSITIONS, TaskStatus
from nico.store.db import Database
from nico.store.models import Site, Task, TaskCount, utcnow
from nico.store.task_counts import compact_task_counts
from nico.store.tasks import (
    add_task,
    insert_tasks,
    prune_finished_tasks,
    transition_task,
)
from tests.support.task_counts import (
    STATUSES,
    actual_counts,
    assert_exact,
    counted,
    make_row,
    make_site,
)


async def test_counts_follow_creates_transitions_prunes_and_deletes(any_database: Database) -> None:
    db = any_database
    site_id, other = await make_site(db), await make_site(db)
    await assert_exact(db, site_id)

    # One task through the ORM path, a bulk import, another site's tasks.
    async with db.session() as session:
        one = make_row(site_id, "Pending")
        await add_task(session, Task(**one))
    await assert_exact(db, site_id)
    old = [
        make_row(site_id, s, "BringUp" if i % 3 == 0 else "PowerControl", age=400)
        for i, s in enumerate(["Succeeded", "Failed", "Terminated"] * 4)
    ]
    async with db.session() as session:
        await insert_tasks(session, old + [make_row(other, "Succeeded") for _ in range(3)])
    await assert_exact(db, site_id)

    # Every transition the domain allows, each from a task in its source status.
    for source, targets in ALLOWED_TASK_TRANSITIONS.items():
        for target in targets:
            row = make_row(site_id, source.value)
            async with db.session() as session:
                await insert_tasks(session, [row])
            async with db.session() as session:
                assert await transition_task(session, row["id"], target, expected=source)
            await assert_exact(db, site_id)
    # A refused transition (finished task) changes nothing.
    async with db.session() as session:
        assert not await transition_task(session, old[0]["id"], TaskStatus.RUNNING)
    await assert_exact(db, site_id)

    # A write that rolls back leaves no delta behind.
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await insert_tasks(session, [make_row(site_id, "Pending")])
            raise RuntimeError("abandon")
    await assert_exact(db, site_id)

    # Retention prune, then compaction: the same totals from one row per key.
    async with db.session() as session:
        gone = await prune_finished_tasks(
            session, site_id, created_before=utcnow() - timedelta(days=300), limit=5
        )
    assert gone == 5
    await assert_exact(db, site_id)
    await compact_task_counts(db)
    await assert_exact(db, site_id)
    async with db.session() as session:
        rows = (await session.execute(select(func.count()).select_from(TaskCount))).scalar_one()
    assert rows == len(await actual_counts(db))

    # A site's deletion cascades to its tasks; compaction then drops its keys.
    async with db.session() as session:
        await session.execute(delete(Site).where(Site.id == other))
    await assert_exact(db, site_id)
    await compact_task_counts(db)
    assert not [k for k in await counted(db) if k[0] == other]
    async with db.session() as session:
        left = await session.execute(select(TaskCount.site_id).where(TaskCount.site_id == other))
        assert left.first() is None


async def test_counts_stay_exact_under_concurrent_creates_and_compaction(
    any_database: Database,
) -> None:
    db = any_database
    site_id = await make_site(db)

    async def create(i: int) -> None:
        async with db.session() as session:
            await add_task(session, Task(**make_row(site_id, STATUSES[i % len(STATUSES)])))

    async def finish(task_id: uuid.UUID) -> None:
        async with db.session() as session:
            await transition_task(session, task_id, TaskStatus.RUNNING)
        async with db.session() as session:
            await transition_task(session, task_id, TaskStatus.SUCCEEDED)

    pending = [make_row(site_id, "Pending") for _ in range(10)]
    async with db.session() as session:
        await insert_tasks(session, pending)
    await asyncio.gather(
        *(create(i) for i in range(30)),
        *(finish(r["id"]) for r in pending),
        *(compact_task_counts(db) for _ in range(4)),
    )
    await assert_exact(db, site_id)
    await compact_task_counts(db)
    await assert_exact(db, site_id)
