"""A tray's tasks in one finished status (`GET /task?trayId=…&status=Failed`) read the
links' copy of the status: it must follow every transition, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from nico.domain import ALLOWED_TASK_TRANSITIONS, FINISHED_TASK_STATUSES, TaskStatus
from nico.store.db import Database
from nico.store.models import TaskTray
from nico.store.task_links import FINISHED_SQL
from nico.store.tasks import FINISHED, TaskQuery, insert_tasks, list_tasks, transition_task
from tests.support.task_counts import make_row, make_site


def test_the_triggers_finished_statuses_are_the_domains() -> None:
    listed = {part.strip(" '") for part in FINISHED_SQL.strip("()").split(",")}
    assert listed == set(FINISHED) == {s.value for s in FINISHED_TASK_STATUSES}


async def _listed(
    db: Database, site_id: uuid.UUID, tray: uuid.UUID, status: str
) -> list[uuid.UUID]:
    async with db.session() as session:
        rows, total = await list_tasks(
            session,
            TaskQuery(site_id=site_id, tray_id=tray, statuses=(status,)),
            offset=0,
            limit=50,
        )
    assert total == len(rows)
    return [r.id for r in rows]


async def test_links_follow_every_transition(any_database: Database) -> None:
    db = any_database
    site_id = await make_site(db)
    tray = uuid.uuid4()
    expected: dict[str, list[uuid.UUID]] = {s.value: [] for s in TaskStatus}
    for source, targets in ALLOWED_TASK_TRANSITIONS.items():
        for target in sorted(targets):
            row = {
                **make_row(site_id, source.value),
                "targets": {"Compute": [str(tray), str(uuid.uuid4())]},
            }
            async with db.session() as session:
                await insert_tasks(session, [row])
            async with db.session() as session:
                assert await transition_task(session, row["id"], target, expected=source)
            expected[target.value].insert(0, row["id"])
            async with db.session() as session:
                copies = set(
                    (
                        await session.execute(
                            select(TaskTray.finished_status).where(TaskTray.task_id == row["id"])
                        )
                    ).scalars()
                )
            assert copies == {target.value if target.finished else None}, (source, target)
    # Inserted already finished (a bulk import): written with the links.
    imported = {**make_row(site_id, "Failed"), "targets": {"Compute": [str(tray)]}}
    async with db.session() as session:
        await insert_tasks(session, [imported])
    expected["Failed"].insert(0, imported["id"])
    for status in ("Succeeded", "Failed", "Terminated"):
        got = await _listed(db, site_id, tray, status)
        assert sorted(got) == sorted(expected[status]), status
        assert got, status
