"""Conflicts, the waiting queue and idempotency on SQLite and PostgreSQL, through the task
manager itself (no Temporal: dispatched tasks stay Pending, as before a workflow starts)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from nico.config import Settings
from nico.domain import OperationType, TaskStatus
from nico.errors import BadRequest, Conflict
from nico.services import Services
from nico.store.db import Database
from nico.store.models import OperationRule, Task, utcnow
from nico.tasks import idempotency, manager, targets
from nico.tasks.conflicts import ConflictStrategy
from nico.tasks.queue import EXPIRED, PROMOTED, QUEUED, promote_rack, sweep_queues
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import add_rack, count_tasks, finish, load_task, services_on, statuses


@pytest.fixture
async def svc(any_database: Database, settings: Settings) -> Services:
    return services_on(any_database, settings)


@pytest.fixture
async def rack(svc: Services) -> MadeRack:
    return await make_site_with_rack(svc)


def power(
    rack: MadeRack,
    strategy: ConflictStrategy = ConflictStrategy.REJECT,
    code: str = "power_on",
    pinned: uuid.UUID | None = None,
    timeout: float | None = None,
) -> manager.OperationRequest:
    return manager.OperationRequest(
        site_id=rack.site_id,
        operation_type=OperationType.POWER_CONTROL,
        operation_code=code,
        description="test",
        info={"state": "on"},
        pinned_rule_id=pinned,
        strategy=strategy,
        queue_timeout=timeout,
    )


async def trays(svc: Services, rack: MadeRack, *indexes: int) -> list[targets.RackTargets]:
    """Compute trays of the rack by index, as one rack's targets."""
    ids = tuple(rack.trays["Compute"][i] for i in indexes)
    async with svc.db.session() as session:
        return await targets.trays_by_selector(session, rack.site_id, targets.TraySelector(ids=ids))


async def whole_rack(svc: Services, rack: MadeRack) -> list[targets.RackTargets]:
    async with svc.db.session() as session:
        return [await targets.rack_by_id(session, rack.site_id, rack.rack_id)]


async def submit_one(
    svc: Services, request: manager.OperationRequest, groups: list[targets.RackTargets]
) -> uuid.UUID:
    [task_id] = await manager.submit(svc, request, groups)
    return task_id


async def test_twenty_concurrent_rejecting_submissions_start_one(
    svc: Services, rack: MadeRack
) -> None:
    groups = await whole_rack(svc, rack)
    results = await asyncio.gather(
        *(manager.submit(svc, power(rack), groups) for _ in range(20)), return_exceptions=True
    )
    started = [r for r in results if isinstance(r, list)]
    rejected = [r for r in results if isinstance(r, Conflict)]
    assert len(started) == 1 and len(rejected) == 19, results
    assert f"conflicting task {started[0][0]}" in rejected[0].message
    assert await statuses(svc, rack.rack_id) == ["Pending"]


async def test_twenty_concurrent_queueing_submissions_fill_the_queue(
    svc: Services, rack: MadeRack
) -> None:
    groups = await whole_rack(svc, rack)
    request = power(rack, ConflictStrategy.QUEUE)
    results = await asyncio.gather(
        *(manager.submit(svc, request, groups) for _ in range(20)), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, list)]
    full = [r for r in results if isinstance(r, Conflict)]
    assert len(accepted) == 6 and len(full) == 14, results
    assert "waiting queue is full (5/5 tasks)" in full[0].message
    assert sorted(await statuses(svc, rack.rack_id)) == ["Pending"] + ["Waiting"] * 5


async def test_conflict_with_reject_names_the_blocker_and_creates_nothing(
    svc: Services, rack: MadeRack
) -> None:
    blocker = await submit_one(svc, power(rack), await trays(svc, rack, 0, 1))
    # Disjoint compute trays run side by side.
    await submit_one(svc, power(rack), await trays(svc, rack, 2))
    with pytest.raises(Conflict) as caught:
        await manager.submit(svc, power(rack, code="power_off"), await trays(svc, rack, 1))
    assert caught.value.data == {"rackId": str(rack.rack_id), "conflictingTaskId": str(blocker)}
    # Powering the whole rack (shelves included) conflicts with everything.
    with pytest.raises(Conflict):
        await manager.submit(svc, power(rack), await whole_rack(svc, rack))
    assert await count_tasks(svc) == 2


async def test_queued_task_waits_with_expiry_and_no_rule(svc: Services, rack: MadeRack) -> None:
    await submit_one(svc, power(rack), await trays(svc, rack, 0))
    before = utcnow()
    queued = await submit_one(
        svc, power(rack, ConflictStrategy.QUEUE, timeout=90), await trays(svc, rack, 0)
    )
    task = await load_task(svc, queued)
    assert (task.status, task.message) == ("Waiting", QUEUED)
    assert task.rule_id is None and task.rule_definition is None
    assert task.queue_expires_at is not None
    assert (
        before + timedelta(seconds=89) <= task.queue_expires_at <= utcnow() + timedelta(seconds=91)
    )


async def test_promotion_is_fifo_and_records_the_rule(svc: Services, rack: MadeRack) -> None:
    c0 = await trays(svc, rack, 0)
    first = await submit_one(svc, power(rack), c0)
    second = await submit_one(svc, power(rack, ConflictStrategy.QUEUE, "power_off"), c0)
    third = await submit_one(svc, power(rack, ConflictStrategy.QUEUE, "restart"), c0)
    await finish(svc, first)
    assert await promote_rack(svc, rack.rack_id) == [second]
    promoted = await load_task(svc, second)
    assert (promoted.status, promoted.message) == ("Pending", PROMOTED)
    assert promoted.rule_source == "default" and promoted.rule_definition
    assert (await load_task(svc, third)).status == "Waiting"
    await finish(svc, second, TaskStatus.FAILED)
    assert await promote_rack(svc, rack.rack_id) == [third]


async def test_head_of_line_task_is_not_overtaken(svc: Services, rack: MadeRack) -> None:
    a = await submit_one(svc, power(rack), await trays(svc, rack, 0))
    b = await submit_one(svc, power(rack), await trays(svc, rack, 1))
    wait_a = await submit_one(svc, power(rack, ConflictStrategy.QUEUE), await trays(svc, rack, 0))
    wait_b = await submit_one(svc, power(rack, ConflictStrategy.QUEUE), await trays(svc, rack, 1))
    await finish(svc, b)
    # Tray 1 is free, but the older queued task (tray 0) still waits on `a`: FIFO holds.
    assert await promote_rack(svc, rack.rack_id) == []
    assert (await load_task(svc, wait_b)).status == "Waiting"
    await finish(svc, a)
    assert await promote_rack(svc, rack.rack_id) == [wait_a, wait_b]


async def test_new_submission_does_not_overtake_a_waiting_task(
    svc: Services, rack: MadeRack
) -> None:
    running = await submit_one(svc, power(rack), await trays(svc, rack, 0))
    whole = await submit_one(svc, power(rack, ConflictStrategy.QUEUE), await whole_rack(svc, rack))
    # Compute 1 is idle, but the queued whole-rack task needs it: rejected, naming that task.
    with pytest.raises(Conflict) as caught:
        await manager.submit(svc, power(rack, code="power_off"), await trays(svc, rack, 1))
    assert caught.value.data == {"rackId": str(rack.rack_id), "conflictingTaskId": str(whole)}
    # Queued, it waits behind the whole-rack task instead of starting first.
    later = await submit_one(svc, power(rack, ConflictStrategy.QUEUE), await trays(svc, rack, 1))
    assert (await load_task(svc, later)).status == "Waiting"

    await finish(svc, running)
    assert await promote_rack(svc, rack.rack_id) == [whole]
    await finish(svc, whole)
    assert await promote_rack(svc, rack.rack_id) == [later]


async def test_new_submission_runs_beside_waiting_tasks_it_does_not_conflict_with(
    svc: Services, rack: MadeRack
) -> None:
    await submit_one(svc, power(rack), await trays(svc, rack, 0))
    await submit_one(svc, power(rack, ConflictStrategy.QUEUE), await trays(svc, rack, 0))
    beside = await submit_one(svc, power(rack), await trays(svc, rack, 2))
    assert (await load_task(svc, beside)).status == "Pending"


async def test_expired_queue_entries_are_terminated_by_the_sweep(
    svc: Services, rack: MadeRack
) -> None:
    c0 = await trays(svc, rack, 0)
    await submit_one(svc, power(rack), c0)
    queued = await submit_one(svc, power(rack, ConflictStrategy.QUEUE), c0)
    async with svc.db.session() as session:
        await session.execute(
            update(Task)
            .where(Task.id == queued)
            .values(queue_expires_at=utcnow() - timedelta(seconds=1))
        )
    await sweep_queues(svc)
    task = await load_task(svc, queued)
    assert (task.status, task.message) == ("Terminated", EXPIRED)
    assert task.finished is not None


async def test_expired_entries_behind_a_blocked_head_expire_and_free_their_slots(
    svc: Services, rack: MadeRack
) -> None:
    c0 = await trays(svc, rack, 0)
    await submit_one(svc, power(rack), c0)
    head = await submit_one(svc, power(rack, ConflictStrategy.QUEUE), c0)
    behind = [
        await submit_one(svc, power(rack, ConflictStrategy.QUEUE, timeout=5), c0) for _ in range(4)
    ]
    async with svc.db.session() as session:
        await session.execute(
            update(Task)
            .where(Task.id.in_(behind))
            .values(queue_expires_at=utcnow() - timedelta(seconds=1))
        )
    await sweep_queues(svc)
    assert [(await load_task(svc, t)).status for t in behind] == ["Terminated"] * 4
    assert (await load_task(svc, head)).status == "Waiting"
    # The queue holds only the head now: a new request queues instead of "queue is full".
    later = await submit_one(svc, power(rack, ConflictStrategy.QUEUE), c0)
    assert (await load_task(svc, later)).status == "Waiting"


async def test_rule_deleted_while_queued_fails_the_task_at_promotion(
    svc: Services, rack: MadeRack
) -> None:
    c0 = await trays(svc, rack, 0)
    first = await submit_one(svc, power(rack), c0)
    rule_id = (await load_task(svc, first)).rule_id
    assert rule_id is not None
    queued = await submit_one(svc, power(rack, ConflictStrategy.QUEUE, pinned=rule_id), c0)
    async with svc.db.session() as session:
        await session.execute(delete(OperationRule).where(OperationRule.id == rule_id))
    await finish(svc, first)
    assert await promote_rack(svc, rack.rack_id) == []
    task = await load_task(svc, queued)
    assert task.status == "Failed"
    assert task.message.startswith("Rule resolution failed when the task left the queue: ")


async def test_bad_pin_is_400_before_any_conflict(svc: Services, rack: MadeRack) -> None:
    c0 = await trays(svc, rack, 0)
    await submit_one(svc, power(rack), c0)
    with pytest.raises(BadRequest) as caught:
        await manager.submit(svc, power(rack, pinned=uuid.uuid4()), c0)
    assert caught.value.data is not None and "ruleId" in caught.value.data


async def test_multi_rack_submission_is_all_or_nothing(svc: Services, rack: MadeRack) -> None:
    second = await add_rack(svc, rack.site_id, "rack-02")
    async with svc.db.session() as session:
        both = await targets.racks_by_names(session, rack.site_id, None)
        busy = [await targets.rack_by_id(session, rack.site_id, second.rack_id)]
    await submit_one(svc, power(rack), busy)
    with pytest.raises(Conflict):
        await manager.submit(svc, power(rack), both)
    assert await statuses(svc, rack.rack_id) == []


async def test_idempotency_key_replays_and_refuses_reuse(svc: Services, rack: MadeRack) -> None:
    groups = await whole_rack(svc, rack)
    body = {"siteId": str(rack.site_id), "state": "on"}
    claim = idempotency.claim_for("demo", "key-1", "PATCH", "/p", body)
    assert claim is not None
    results = await asyncio.gather(
        *(manager.submit(svc, power(rack), groups, claim) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(r == results[0] for r in results), results
    assert await count_tasks(svc) == 1
    other = idempotency.claim_for("demo", "key-1", "PATCH", "/p", body | {"state": "off"})
    assert other is not None
    with pytest.raises(Conflict):
        await manager.submit(svc, power(rack, code="power_off"), groups, other)
    # The same key in another org is another key.
    elsewhere = idempotency.claim_for("other", "key-1", "PATCH", "/p", body)
    with pytest.raises(Conflict) as caught:
        await manager.submit(svc, power(rack), groups, elsewhere)
    assert "conflicting task" in caught.value.message
    assert await count_tasks(svc) == 1


def test_idempotency_key_is_checked() -> None:
    assert idempotency.claim_for("demo", None, "PATCH", "/p", {}) is None
    for bad in ("", " ", "x" * 256, "a\nb"):
        with pytest.raises(BadRequest):
            idempotency.claim_for("demo", bad, "PATCH", "/p", {})
