"""Cancel without a workflow to ask: the task row is finished here, whatever its report."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from nico.config import Settings
from nico.domain import OperationType
from nico.services import Services
from nico.store.db import Database
from nico.store.models import Task
from nico.tasks import manager, targets
from nico.tasks.cancel import cancel_task
from tests.support.inventory import make_site_with_rack
from tests.support.tasks import services_on


@pytest.fixture
async def svc(any_database: Database, settings: Settings) -> Services:
    return services_on(any_database, settings)


async def test_cancel_terminates_a_task_whose_stored_report_does_not_parse(svc: Services) -> None:
    rack = await make_site_with_rack(svc)
    async with svc.db.session() as session:
        groups = [await targets.rack_by_id(session, rack.site_id, rack.rack_id)]
    request = manager.OperationRequest(
        site_id=rack.site_id,
        operation_type=OperationType.POWER_CONTROL,
        operation_code="power_on",
        description="test",
        info={"state": "on"},
    )
    [task_id] = await manager.submit(svc, request, groups)
    garbled = {"version": 1, "stages": [{"status": "running"}]}
    async with svc.db.session() as session:
        await session.execute(update(Task).where(Task.id == task_id).values(report=garbled))

    task = await cancel_task(svc, task_id, rack.site_id)

    assert (task.status, task.message) == ("Terminated", "Cancelled by user")
    assert task.report == garbled
