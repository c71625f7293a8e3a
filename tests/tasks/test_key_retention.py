"""The worker's sweep prunes operation ledger entries of tasks finished long ago (or gone)
and Idempotency-Keys past their replay window, in bounded batches, never what a task
that can still act needs: an entry of an unfinished task stays, a key naming one still
replays, a recent key still replays."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from nico.config import Settings
from nico.domain import OperationType
from nico.engine import ledger
from nico.errors import Conflict
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.db import Database
from nico.store.models import IdempotencyKey, OperationLedger, Provider, Site, utcnow
from nico.store.tasks import insert_tasks
from nico.tasks import idempotency, key_retention, manager, targets
from nico.tasks.background import run_pass
from nico.tasks.key_retention import prune_idempotency_keys, prune_ledger, replay_window
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import add_rack, count_tasks, finish, services_on

DAY = timedelta(days=1)

# --- operation ledger ----------------------------------------------------------------


async def _site(services: Services) -> uuid.UUID:
    provider_id, site_id = uuid.uuid4(), uuid.uuid4()
    async with services.db.session() as session:
        session.add(Provider(id=provider_id, org=f"o-{provider_id.hex[:8]}", name="p"))
        await session.flush()
        session.add(Site(id=site_id, provider_id=provider_id, name="s"))
    return site_id


async def _task(
    services: Services,
    site_id: uuid.UUID,
    status: str,
    created: datetime,
    finished: datetime | None,
) -> uuid.UUID:
    task_id = uuid.uuid4()
    row = {
        "id": task_id,
        "site_id": site_id,
        "rack_id": uuid.uuid4(),
        "operation_type": "PowerControl",
        "operation_code": "restart",
        "status": status,
        "targets": {},
        "created": created,
        "updated": finished or created,
        "finished": finished,
    }
    async with services.db.session() as session:
        await insert_tasks(session, [row])
    return task_id


async def _entries(services: Services, task_id: uuid.UUID, n: int, at: datetime) -> list[str]:
    """`n` accepted power cycles of one step of `task_id`, recorded at `at`, as the step
    runner keys them (`StepContext.ledger_key`)."""
    keys = [f"{task_id}/stage-1/step-1/{uuid.uuid4()}/main" for _ in range(n)]
    async with services.db.session() as session:
        session.add_all(
            OperationLedger(
                key=key,
                tray_id=uuid.UUID(key.split("/")[3]),
                action="power",
                result={"code": "restart"},
                created=at + timedelta(milliseconds=i),
                accepted=at + timedelta(milliseconds=i),
            )
            for i, key in enumerate(keys)
        )
    return keys


async def _left(services: Services, keys: list[str]) -> int:
    async with services.db.session() as session:
        return len(await ledger.lookup_many(session, keys))


async def test_ledger_entries_go_once_their_task_finished_long_ago_never_while_it_runs(
    any_database: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Default settings (tasks kept for good): the ledger is still pruned, a bounded
    number of entries per pass; a running task's entries stay however old, ahead of the
    others in the walk without stalling it, and its retry still finds them."""
    services = services_on(any_database, settings)
    assert settings.task_retention is None
    monkeypatch.setattr(key_retention, "BATCH", 30)
    monkeypatch.setattr(key_retention, "MAX_BATCHES", 2)
    now, old = utcnow(), utcnow() - timedelta(days=400)
    site = await _site(services)
    running = await _task(services, site, "Running", old, None)
    done_long_ago = await _task(services, site, "Succeeded", old, old + timedelta(hours=2))
    just_cancelled = await _task(services, site, "Terminated", old, now - timedelta(minutes=5))
    gone = uuid.uuid4()  # a task retention already pruned
    done_today = await _task(services, site, "Failed", now - timedelta(hours=3), now)

    # The running task's entries are the oldest: the walk meets them first.
    kept_running = await _entries(services, running, 70, old - DAY)
    doomed = await _entries(services, done_long_ago, 50, old)
    doomed += await _entries(services, gone, 20, old + DAY)
    kept_cancelled = await _entries(services, just_cancelled, 5, old + 2 * DAY)
    kept_today = await _entries(services, done_today, 5, now - timedelta(hours=3))

    caplog.set_level(logging.INFO, logger="nico.tasks")
    first = await prune_ledger(services)
    assert first <= 2 * 30  # a pass reads at most MAX_BATCHES x BATCH entries
    passes = 1
    while await _left(services, doomed) and passes < 10:
        await run_pass(services)  # the worker's sweep goes on where the last pass stopped
        passes += 1

    assert await _left(services, doomed) == 0
    assert await _left(services, kept_running) == 70
    assert await _left(services, kept_cancelled) == 5
    assert await _left(services, kept_today) == 5
    async with services.db.session() as session:
        # What a retried activity of the running task asks before sending a cycle again.
        assert await ledger.recorded(session, kept_running[0]) == {"code": "restart"}
    lines = [r.getMessage() for r in caplog.records if "ledger retention" in r.getMessage()]
    assert lines and all("operation ledger entries" in line for line in lines)
    assert sum(int(line.split()[3]) for line in lines) == 70


# --- Idempotency-Keys ----------------------------------------------------------------


def _power(site_id: uuid.UUID) -> manager.OperationRequest:
    return manager.OperationRequest(
        site_id=site_id,
        operation_type=OperationType.POWER_CONTROL,
        operation_code="power_on",
        description="test",
        info={"state": "on"},
    )


async def _submit(svc: Services, rack: MadeRack, key: str) -> list[uuid.UUID]:
    """What `PATCH /rack/{id}/power` with an Idempotency-Key does, through the manager."""
    claim = idempotency.claim_for("demo", key, "PATCH", "/power", {"state": "On"})
    async with svc.db.session() as session:
        groups = [await targets.rack_by_id(session, rack.site_id, rack.rack_id)]
    return await manager.submit(svc, _power(rack.site_id), groups, claim)


async def _age_key(svc: Services, key: str, age: timedelta) -> None:
    async with svc.db.session() as session:
        await session.execute(
            update(IdempotencyKey).where(IdempotencyKey.key == key).values(created=utcnow() - age)
        )


async def test_keys_replay_within_their_window_and_while_their_task_runs(
    any_database: Database, settings: Settings
) -> None:
    """NICO_TASK_RETENTION=1h: keys replay for 24 h. An older key of a finished task is
    gone (the same request starts a new task); an older key of a task still pending and a
    recent one replay their tasks."""
    svc = services_on(any_database, settings.model_copy(update={"task_retention": 3600.0}))
    assert replay_window(svc.settings) == 86400
    rack = await make_site_with_rack(svc)
    other = await add_rack(svc, rack.site_id, "rack-02")

    [done] = await _submit(svc, rack, "old-done")
    await finish(svc, done)
    await _age_key(svc, "old-done", 2 * DAY)
    [pending] = await _submit(svc, rack, "old-pending")
    await _age_key(svc, "old-pending", 2 * DAY)
    [recent] = await _submit(svc, other, "recent")
    await finish(svc, recent)
    await _age_key(svc, "recent", timedelta(hours=23))

    await run_pass(svc)

    assert await _submit(svc, rack, "old-pending") == [pending]
    assert await _submit(svc, other, "recent") == [recent]
    with pytest.raises(Conflict):  # a recent key still refuses another request
        claim = idempotency.claim_for("demo", "recent", "PATCH", "/power", {"state": "Off"})
        async with svc.db.session() as session:
            groups = [await targets.rack_by_id(session, other.site_id, other.rack_id)]
        await manager.submit(svc, _power(other.site_id), groups, claim)
    await finish(svc, pending)
    before = await count_tasks(svc)
    [again] = await _submit(svc, rack, "old-done")  # forgotten: a new request
    assert again != done
    assert await count_tasks(svc) == before + 1


async def _keys(svc: Services, prefix: str, n: int, age: timedelta) -> None:
    """`n` keys stored `age` ago by requests that matched no tray (no task ids)."""
    async with svc.db.session() as session:
        session.add_all(
            IdempotencyKey(
                org="demo",
                key=f"{prefix}-{i}",
                fingerprint="f" * 64,
                task_ids=[],
                created=utcnow() - age + timedelta(milliseconds=i),
            )
            for i in range(n)
        )


async def _key_count(svc: Services) -> int:
    async with svc.db.session() as session:
        return int((await session.execute(select(func.count(IdempotencyKey.id)))).scalar_one())


async def test_old_keys_go_in_bounded_batches_and_only_with_a_task_retention(
    any_database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(key_retention, "BATCH", 10)
    monkeypatch.setattr(key_retention, "MAX_BATCHES", 2)
    keep_all = services_on(any_database, settings)
    await _keys(keep_all, "old", 25, timedelta(days=4000))
    assert replay_window(keep_all.settings) is None
    assert await prune_idempotency_keys(keep_all) == 0  # tasks kept for good: keys too

    svc = services_on(any_database, settings.model_copy(update={"task_retention": 400 * 86400.0}))
    assert replay_window(svc.settings) == 400 * 86400
    await _keys(svc, "recent", 3, timedelta(days=399))
    assert await prune_idempotency_keys(svc) == 20  # MAX_BATCHES x BATCH a pass
    assert await prune_idempotency_keys(svc) == 5
    assert await prune_idempotency_keys(svc) == 0
    assert await _key_count(svc) == 3  # the keys younger than the 400-day retention


async def test_a_key_of_a_many_rack_request_stays_while_any_of_its_tasks_runs(
    any_database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request over many racks stores one key naming a task per rack; its tasks are
    looked up a chunk at a time (bind-parameter limits), and one still running anywhere
    in the list keeps the key."""
    monkeypatch.setattr(task_store, "LOOKUP_CHUNK", 7)
    svc = services_on(any_database, settings.model_copy(update={"task_retention": 3600.0}))
    site, old = await _site(svc), utcnow() - 3 * DAY
    finished = [await _task(svc, site, "Succeeded", old, old) for _ in range(40)]
    running = await _task(svc, site, "Running", old, None)
    async with svc.db.session() as session:
        for key, ids in (("all-done", finished[:20]), ("one-running", [*finished[20:], running])):
            session.add(
                IdempotencyKey(
                    org="demo",
                    key=key,
                    fingerprint="f" * 64,
                    task_ids=[str(i) for i in ids],
                    created=old,
                )
            )
    assert await prune_idempotency_keys(svc) == 1
    async with svc.db.session() as session:
        left = (await session.execute(select(IdempotencyKey.key))).scalars().all()
    assert left == ["one-running"]
