"""The reconciler's work list is picked in SQL: Pending/Running tasks untouched for the
grace period, oldest first, without loading their reports."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from nico.config import Settings
from nico.domain import OperationType, TaskStatus
from nico.store import tasks as task_store
from nico.store.db import Database
from nico.store.models import Task, utcnow
from nico.tasks import manager, targets
from nico.tasks.conflicts import ConflictStrategy
from tests.support.inventory import make_site_with_rack
from tests.support.tasks import finish, services_on


async def test_work_list_is_old_pending_and_running_tasks_only(
    any_database: Database, settings: Settings
) -> None:
    services = services_on(any_database, settings)
    ids = []
    for _ in range(4):
        rack = await make_site_with_rack(services)
        async with services.db.session() as session:
            groups = [await targets.rack_by_id(session, rack.site_id, rack.rack_id)]
        request = manager.OperationRequest(
            site_id=rack.site_id,
            operation_type=OperationType.POWER_CONTROL,
            operation_code="power_on",
            description="test",
            info={"state": "on"},
        )
        [task_id] = await manager.submit(services, request, groups)
        ids.append(task_id)
        queued = manager.OperationRequest(
            **{**request.__dict__, "strategy": ConflictStrategy.QUEUE}
        )
        ids.append((await manager.submit(services, queued, groups))[0])
    old_pending, old_waiting, running, _, done, _, fresh, _ = ids
    await finish(services, done)
    async with services.db.session() as session:
        await task_store.transition_task(session, running, TaskStatus.RUNNING)
        await session.execute(
            update(Task)
            .where(Task.id.in_([old_pending, old_waiting, running, done]))
            .values(updated=utcnow() - timedelta(minutes=5))
        )

    async with services.db.session() as session:
        work = await task_store.unfinished_tasks(
            session, updated_before=utcnow() - timedelta(minutes=1)
        )

    assert [(t.id, t.status) for t in work] == [
        (old_pending, TaskStatus.PENDING),
        (running, TaskStatus.RUNNING),
    ]
    assert fresh not in {t.id for t in work}
