"""Bulk submission: the database work of a many-rack request does not grow with the
number of racks, every task id comes back, and a dispatch cut short by a crash is
finished by the reconciler."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select
from temporalio.testing import WorkflowEnvironment

from nico.config import Settings
from nico.domain import OperationType
from nico.engine.client import WorkflowState, task_workflow_state
from nico.services import Services
from nico.store.db import Database
from nico.store.models import Task
from nico.tasks import fanout, manager, targets
from nico.tasks.reconcile import reconcile
from tests.support.inventory import make_site_with_rack
from tests.support.tasks import add_rack, services_on


async def site_with_racks(services: Services, count: int) -> uuid.UUID:
    first = await make_site_with_rack(services, rack_name="rack-00")
    for i in range(1, count):
        await add_rack(services, first.site_id, f"rack-{i:02d}")
    return first.site_id


def power_on(site_id: uuid.UUID) -> manager.OperationRequest:
    return manager.OperationRequest(
        site_id=site_id,
        operation_type=OperationType.POWER_CONTROL,
        operation_code="power_on",
        description="bulk test",
        info={"state": "on"},
    )


async def every_rack(services: Services, site_id: uuid.UUID) -> list[targets.RackTargets]:
    async with services.db.session() as session:
        return await targets.racks_by_names(session, site_id, None)


@contextmanager
def counted_statements(db: Database) -> Iterator[list[str]]:
    """Every statement sent to the database while the block runs (an executemany is one)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_submitting_for_12_racks_costs_the_round_trips_of_2(
    any_database: Database, settings: Settings
) -> None:
    services = services_on(any_database, settings)  # no Temporal: creation only
    small_site = await site_with_racks(services, 2)
    large_site = await site_with_racks(services, 12)
    small, large = await every_rack(services, small_site), await every_rack(services, large_site)

    with counted_statements(services.db) as few:
        small_ids = await manager.submit(services, power_on(small_site), small)
    with counted_statements(services.db) as many:
        large_ids = await manager.submit(services, power_on(large_site), large)

    assert len(small_ids) == 2 and len(large_ids) == 12
    assert len(many) == len(few), "\n".join(many)
    async with services.db.session() as session:
        rows = (await session.scalars(select(Task).where(Task.id.in_(large_ids)))).all()
    assert sorted(t.status for t in rows) == ["Pending"] * 12
    assert {t.rack_id for t in rows} == {g.rack.id for g in large}
    assert all(sum(map(len, t.targets.values())) == 35 for t in rows)


@pytest.mark.temporal
async def test_a_dispatch_cut_short_after_the_answer_is_finished_by_the_reconciler(
    services: Services,
    private_temporal_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No worker runs these workflows: a server of the test's own, an idle queue.
    services.settings.temporal_task_queue = f"idle-{uuid.uuid4().hex}"
    services.temporal = private_temporal_env.client
    monkeypatch.setattr(fanout, "ANSWER_WITHIN", 0.0)  # answer right after the first chunk
    site_id = await site_with_racks(services, 40)

    task_ids = await manager.submit(
        services, power_on(site_id), await every_rack(services, site_id)
    )
    # The process "dies" now: the background dispatch of later chunks never finishes.
    # Starts already made finish being recorded (shielded, as on a clean stop); read the
    # rows after that, or a record landing between this read and the reconciler's makes
    # those tasks look undispatched here yet need no start there.
    cut_short = list(fanout._background)
    for job in cut_short:
        job.cancel()
    await asyncio.gather(*cut_short, return_exceptions=True)
    await asyncio.gather(*list(fanout._recording), return_exceptions=True)

    assert len(task_ids) == 40
    async with services.db.session() as session:
        rows = (await session.scalars(select(Task).where(Task.id.in_(task_ids)))).all()
    undispatched = {t.id for t in rows if t.workflow_id is None}
    assert {t.status for t in rows} == {"Pending"}
    # The first chunk was started before the answer (recording the starts may still have
    # been under way: the answer does not wait for the write lock); the third never began.
    assert len(undispatched) >= 40 - 2 * fanout.DISPATCH_CHUNK
    first = {await task_workflow_state(services.temporal, t) for t in task_ids[:16]}
    assert first == {WorkflowState.RUNNING}

    result = await reconcile(services, grace=0)

    assert undispatched <= set(result.dispatched) and result.failed == []
    async with services.db.session() as session:
        rows = (await session.scalars(select(Task).where(Task.id.in_(task_ids)))).all()
    assert {t.workflow_id for t in rows} == {str(t) for t in task_ids}
    states = {await task_workflow_state(services.temporal, t) for t in task_ids}
    assert states == {WorkflowState.RUNNING}
