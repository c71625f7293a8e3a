"""The rack and tray totals of `GET /rack/{id}/task`, `GET /tray/{id}/task` and `GET /task`
with `rackId`/`trayId` read the rack and tray counters, and stay exact on SQLite and
PostgreSQL: through creation (one task, a bulk import), every status transition, a
rolled-back write, retention prune, a site's cascade delete, concurrent creates and
the sweep's compaction running alongside them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from nico.domain import ALLOWED_TASK_TRANSITIONS, TaskStatus
from nico.store.db import Database
from nico.store.models import Site, Task, TaskRackCount, TaskTray, TaskTrayCount, utcnow
from nico.store.task_counts import compact_task_counts
from nico.store.tasks import (
    NOT_FINISHED,
    TaskQuery,
    add_task,
    insert_tasks,
    list_tasks,
    prune_finished_tasks,
    transition_task,
)
from tests.support.task_counts import STATUSES, make_site

RACKS = [uuid.uuid4() for _ in range(2)]
TRAYS = [uuid.uuid4() for _ in range(4)]  # each task targets 2 or 3 of them


def _row(site_id: uuid.UUID, status: str, i: int, *, age: int = 0) -> dict[str, Any]:
    created = utcnow() - timedelta(days=age, seconds=i)
    trays = TRAYS[i % 2 : i % 2 + 2 + i % 2]
    return {
        "id": uuid.uuid4(),
        "site_id": site_id,
        "rack_id": RACKS[i % 2],
        "operation_type": "BringUp" if i % 3 == 0 else "PowerControl",
        "operation_code": "power_on",
        "status": status,
        "targets": {"Compute": [str(t) for t in trays]},
        "created": created,
        "updated": created,
    }


_FILTERS: list[tuple[tuple[str, ...] | None, str | None]] = [
    (None, None),
    *[((s,), None) for s in STATUSES],
    (tuple(sorted(NOT_FINISHED)), None),  # activeOnly
    (("Failed", "Succeeded"), None),
    (None, "BringUp"),
    (("Succeeded",), "PowerControl"),
]


async def _actual(db: Database, query: TaskQuery) -> int:
    """The total counted from the rows themselves."""
    statement = select(func.count()).select_from(Task).where(Task.site_id == query.site_id)
    if query.rack_id is not None:
        statement = statement.where(Task.rack_id == query.rack_id)
    if query.tray_id is not None:
        statement = statement.join(TaskTray, TaskTray.task_id == Task.id).where(
            TaskTray.tray_id == query.tray_id
        )
    if query.statuses is not None:
        statement = statement.where(Task.status.in_(query.statuses))
    if query.operation_type is not None:
        statement = statement.where(Task.operation_type == query.operation_type)
    async with db.session() as session:
        return int((await session.execute(statement)).scalar_one())


async def assert_scopes_exact(db: Database, site_id: uuid.UUID) -> None:
    """Every rack's and tray's list total, under every filter, equals the rows."""
    queries = [
        TaskQuery(site_id=site_id, rack_id=rack, statuses=statuses, operation_type=op)
        for rack in RACKS
        for statuses, op in _FILTERS
    ] + [
        TaskQuery(site_id=site_id, tray_id=tray, statuses=statuses, operation_type=op)
        for tray in TRAYS
        for statuses, op in _FILTERS
    ]
    async with db.session() as session:
        for query in queries:
            _, total = await list_tasks(session, query, offset=0, limit=1)
            assert total == await _actual(db, query), query


async def _counter_sums(db: Database, site_id: uuid.UUID) -> tuple[int, int]:
    async with db.session() as session:
        racks = await session.scalar(
            select(func.coalesce(func.sum(TaskRackCount.n), 0)).where(
                TaskRackCount.site_id == site_id
            )
        )
        trays = await session.scalar(
            select(func.coalesce(func.sum(TaskTrayCount.n), 0)).where(
                TaskTrayCount.site_id == site_id
            )
        )
    return int(racks or 0), int(trays or 0)


async def test_rack_and_tray_totals_follow_creates_transitions_prunes_and_deletes(
    any_database: Database,
) -> None:
    db = any_database
    site_id, other = await make_site(db), await make_site(db)

    # One task through the ORM path, a bulk import, another site's tasks on the same
    # racks and trays (the site filter matters).
    async with db.session() as session:
        await add_task(session, Task(**_row(site_id, "Pending", 0)))
    old = [
        _row(site_id, s, i, age=400)
        for i, s in enumerate(["Succeeded", "Failed", "Terminated"] * 4)
    ]
    async with db.session() as session:
        await insert_tasks(session, old + [_row(other, "Succeeded", i) for i in range(5)])
    await assert_scopes_exact(db, site_id)

    # Every transition the domain allows, each from a task in its source status.
    i = 100
    for source, targets in ALLOWED_TASK_TRANSITIONS.items():
        for target in targets:
            i += 1
            row = _row(site_id, source.value, i)
            async with db.session() as session:
                await insert_tasks(session, [row])
            async with db.session() as session:
                assert await transition_task(session, row["id"], target, expected=source)
    await assert_scopes_exact(db, site_id)

    # A write that rolls back leaves no delta behind.
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            await insert_tasks(session, [_row(site_id, "Pending", 7)])
            await transition_task(session, old[0]["id"], TaskStatus.RUNNING, expected=None)
            raise RuntimeError("abandon")
    await assert_scopes_exact(db, site_id)

    # Retention prune, then compaction: the same totals, one row per key.
    async with db.session() as session:
        gone = await prune_finished_tasks(
            session, site_id, created_before=utcnow() - timedelta(days=300), limit=5
        )
    assert gone == 5
    await assert_scopes_exact(db, site_id)
    await compact_task_counts(db)
    await assert_scopes_exact(db, site_id)
    async with db.session() as session:
        for table, scope in ((TaskRackCount, "rack_id"), (TaskTrayCount, "tray_id")):
            keys = (table.site_id, getattr(table, scope), table.status, table.operation_type)
            rows = await session.scalar(select(func.count()).select_from(table))
            distinct = await session.scalar(
                select(func.count()).select_from(select(*keys).distinct().subquery())
            )
            assert rows == distinct, table.__tablename__

    # A task deleted on its own takes its links' counts with it.
    async with db.session() as session:
        await session.execute(delete(Task).where(Task.id == old[-1]["id"]))
    await assert_scopes_exact(db, site_id)

    # A site's deletion cascades to its tasks and their links; compaction then drops its
    # keys, and the other site's totals are untouched.
    assert await _counter_sums(db, other) == (5, 5 * 2 + 5 // 2)
    async with db.session() as session:
        await session.execute(delete(Site).where(Site.id == other))
    assert await _counter_sums(db, other) == (0, 0)
    await assert_scopes_exact(db, site_id)
    await compact_task_counts(db)
    async with db.session() as session:
        for table in (TaskRackCount, TaskTrayCount):
            left = await session.execute(select(table.id).where(table.site_id == other))
            assert left.first() is None


async def test_rack_and_tray_totals_stay_exact_under_concurrent_writes_and_compaction(
    any_database: Database,
) -> None:
    db = any_database
    site_id = await make_site(db)

    async def create(i: int) -> None:
        async with db.session() as session:
            await add_task(session, Task(**_row(site_id, STATUSES[i % len(STATUSES)], i)))

    async def finish(task_id: uuid.UUID) -> None:
        async with db.session() as session:
            await transition_task(session, task_id, TaskStatus.RUNNING)
        async with db.session() as session:
            await transition_task(session, task_id, TaskStatus.SUCCEEDED)

    pending = [_row(site_id, "Pending", i) for i in range(10)]
    async with db.session() as session:
        await insert_tasks(session, pending)
    await asyncio.gather(
        *(create(i) for i in range(30)),
        *(finish(r["id"]) for r in pending),
        *(compact_task_counts(db) for _ in range(4)),
    )
    await assert_scopes_exact(db, site_id)
    await compact_task_counts(db)
    await assert_scopes_exact(db, site_id)


async def test_compaction_leaves_settled_counters_alone(any_database: Database) -> None:
    """A pass folds only the keys that got new deltas: a fleet's tray counters are tens of
    thousands of folded rows, and rewriting all of them every 30 s held SQLite's write
    lock (every writer waits) and left as many dead rows on PostgreSQL each pass."""
    db = any_database
    site_id = await make_site(db)
    async with db.session() as session:
        await insert_tasks(session, [_row(site_id, "Succeeded", i) for i in range(12)])
    await compact_task_counts(db)

    async def rows() -> dict[str, set[int]]:
        async with db.session() as session:
            return {
                table.__tablename__: set((await session.scalars(select(table.id))).all())
                for table in (TaskRackCount, TaskTrayCount)
            }

    settled = await rows()
    await compact_task_counts(db)  # nothing new: nothing rewritten
    assert await rows() == settled

    # One new task on RACKS[1] targeting TRAYS[1:4]: only its keys are folded again.
    async with db.session() as session:
        await insert_tasks(session, [_row(site_id, "Succeeded", 1)])
    await compact_task_counts(db)
    after = await rows()
    async with db.session() as session:
        kept_racks = await session.scalars(
            select(TaskRackCount.id).where(TaskRackCount.rack_id == RACKS[0])
        )
        kept_trays = await session.scalars(
            select(TaskTrayCount.id).where(TaskTrayCount.tray_id == TRAYS[0])
        )
        assert set(kept_racks.all()) <= settled["task_rack_counts"]
        assert set(kept_trays.all()) <= settled["task_tray_counts"]
    assert after != settled
    await assert_scopes_exact(db, site_id)


async def _counter_rows(db: Database) -> int:
    async with db.session() as session:
        racks = await session.scalar(select(func.count()).select_from(TaskRackCount))
        trays = await session.scalar(select(func.count()).select_from(TaskTrayCount))
    return int(racks or 0) + int(trays or 0)


async def test_a_task_writes_its_rack_and_tray_counters_once_when_it_settles(
    any_database: Database,
) -> None:
    """Submission and every transition before the task settles write no rack or tray
    counter row (they did: 2 per targeted tray each time, under SQLite's one write lock);
    the totals count the active task all along, and its settled status once it ends."""
    db = any_database
    site_id = await make_site(db)
    row = _row(site_id, "Waiting", 1)  # RACKS[1], TRAYS[1:4]: 3 trays
    async with db.session() as session:
        await insert_tasks(session, [row])
    await assert_scopes_exact(db, site_id)
    for source, target in (
        (TaskStatus.WAITING, TaskStatus.PENDING),
        (TaskStatus.PENDING, TaskStatus.RUNNING),
    ):
        async with db.session() as session:
            assert await transition_task(session, row["id"], target, expected=source)
        assert await _counter_rows(db) == 0
        await assert_scopes_exact(db, site_id)
    async with db.session() as session:
        assert await transition_task(
            session, row["id"], TaskStatus.SUCCEEDED, expected=TaskStatus.RUNNING
        )
    assert await _counter_rows(db) == 1 + 3
    await assert_scopes_exact(db, site_id)


async def test_totals_stay_exact_while_tasks_settle_under_concurrent_reads(
    any_database: Database,
) -> None:
    """A total read while tasks move from active to settled counts each task once: the
    live count and the counters are read in one statement, one snapshot."""
    db = any_database
    site_id = await make_site(db)
    rows = [_row(site_id, "Running", i) for i in range(12)]
    async with db.session() as session:
        await insert_tasks(session, rows)
    queries = [TaskQuery(site_id=site_id, rack_id=rack) for rack in RACKS] + [
        TaskQuery(site_id=site_id, tray_id=tray) for tray in TRAYS
    ]
    expected = {q: await _actual(db, q) for q in queries}
    done = False

    async def settle() -> None:
        nonlocal done
        for r in rows:
            async with db.session() as session:
                await transition_task(session, r["id"], TaskStatus.SUCCEEDED)
            await compact_task_counts(db)
        done = True

    async def read() -> None:
        while not done:
            async with db.session() as session:
                for q in queries:
                    _, total = await list_tasks(session, q, offset=0, limit=1)
                    assert total == expected[q], q
            await asyncio.sleep(0)

    await asyncio.gather(settle(), read(), read())
    await assert_scopes_exact(db, site_id)
