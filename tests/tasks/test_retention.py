"""NICO_TASK_RETENTION: the sweep prunes old finished tasks in bounded batches, never an
unfinished one, and the task lists' totals follow at once."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from nico.config import Settings
from nico.store.db import Database
from nico.store.history import (
    HistoryEntry,
    HistoryKind,
    HistoryQuery,
    HistorySource,
    append_history,
    list_history,
)
from nico.store.models import Provider, Site, utcnow
from nico.store.tasks import TaskQuery, insert_tasks, list_tasks
from nico.tasks import retention
from nico.tasks.background import run_pass
from nico.tasks.retention import prune_history, prune_tray_history
from tests.support.tasks import count_tasks, services_on


def _rows(site_id: uuid.UUID, tray: uuid.UUID, n: int, status: str, age: timedelta) -> list[Any]:
    created = utcnow() - age
    return [
        {
            "id": uuid.uuid4(),
            "site_id": site_id,
            "rack_id": uuid.uuid4(),
            "operation_type": "PowerControl",
            "operation_code": "power_on",
            "status": status,
            "targets": {"Compute": [str(tray)]},
            "created": created + timedelta(seconds=i),
            "updated": created + timedelta(seconds=i),
        }
        for i in range(n)
    ]


async def test_retention_prunes_old_finished_tasks_in_batches(
    any_database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = services_on(any_database, settings.model_copy(update={"task_retention": 86400.0}))
    monkeypatch.setattr(retention, "BATCH", 50)
    monkeypatch.setattr(retention, "MAX_BATCHES", 3)
    provider_id, site_id, tray = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    old, recent = timedelta(days=400), timedelta(hours=1)
    async with services.db.session() as session:
        session.add(Provider(id=provider_id, org="retention", name="p"))
        await session.flush()
        session.add(Site(id=site_id, provider_id=provider_id, name="s"))
        await session.flush()
        await insert_tasks(session, _rows(site_id, tray, 200, "Succeeded", old))
        await insert_tasks(session, _rows(site_id, tray, 20, "Failed", old))
        await insert_tasks(session, _rows(site_id, tray, 2, "Running", old))
        await insert_tasks(session, _rows(site_id, tray, 1, "Waiting", old))
        await insert_tasks(session, _rows(site_id, tray, 5, "Succeeded", recent))

    # One pass deletes at most MAX_BATCHES x BATCH, so years of history go over a few.
    assert await prune_history(services) == 150
    assert await count_tasks(services, site_id=site_id) == 228 - 150
    while await prune_history(services):
        pass

    assert await count_tasks(services, site_id=site_id) == 8
    assert await count_tasks(services, site_id=site_id, status="Running") == 2
    assert await count_tasks(services, site_id=site_id, status="Waiting") == 1
    async with services.db.session() as session:
        page, total = await list_tasks(
            session, TaskQuery(site_id=site_id, tray_id=tray), offset=0, limit=20
        )
        _, active = await list_tasks(
            session,
            TaskQuery(site_id=site_id, tray_id=tray, statuses=("Pending", "Running", "Waiting")),
            offset=0,
            limit=20,
        )
    assert (len(page), total, active) == (8, 8, 3)


async def test_no_retention_keeps_everything(any_database: Database, settings: Settings) -> None:
    services = services_on(any_database, settings)
    assert settings.task_retention is None
    assert await prune_history(services) == 0


def test_retention_setting_takes_a_duration() -> None:
    assert Settings(task_retention="400d").task_retention == 400 * 86400
    assert Settings(task_retention="72h").task_retention == 72 * 3600
    assert Settings(task_retention="3600").task_retention == 3600
    assert Settings(task_retention="").task_retention is None
    for bad in ("0", "-5d", "soon", "nan", "inf", "1e7d"):
        with pytest.raises(ValidationError, match="task_retention"):
            Settings(task_retention=bad)


def _history(rack: uuid.UUID, n: int, age: timedelta) -> list[HistoryEntry]:
    at = utcnow() - age
    return [
        HistoryEntry(
            site_id=uuid.uuid4(),
            rack_id=rack,
            tray_id=uuid.uuid4(),
            kind=HistoryKind.POWER,
            at=at + timedelta(seconds=i),
            source=HistorySource.SYNC,
            from_value="Off",
            to_value="On",
        )
        for i in range(n)
    ]


async def _history_of(services: Any, rack: uuid.UUID) -> int:
    async with services.db.session() as session:
        _, total = await list_history(session, HistoryQuery(rack_id=rack), offset=0, limit=1)
    return total


async def test_retention_prunes_old_tray_history_in_batches_and_keeps_recent_rows(
    any_database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same NICO_TASK_RETENTION ages tray history rows out, racks gone from the
    inventory included, at most MAX_BATCHES x BATCH rows a pass; recent rows stay."""
    services = services_on(any_database, settings.model_copy(update={"task_retention": 86400.0}))
    monkeypatch.setattr(retention, "BATCH", 40)
    monkeypatch.setattr(retention, "MAX_BATCHES", 3)
    busy, quiet, fresh = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    old, recent = timedelta(days=400), timedelta(hours=1)
    async with services.db.session() as session:
        await append_history(session, _history(busy, 100, old) + _history(busy, 7, recent))
        await append_history(session, _history(quiet, 30, old) + _history(fresh, 5, recent))

    first = await prune_tray_history(services)
    assert 100 <= first <= 3 * 40  # three batches of at most 40, then the next pass
    assert await _history_of(services, busy) + await _history_of(services, quiet) > 7
    await run_pass(services)  # the worker's sweep takes the rest
    assert await prune_tray_history(services) == 0

    assert await _history_of(services, busy) == 7
    assert await _history_of(services, quiet) == 0
    assert await _history_of(services, fresh) == 5


async def test_no_retention_keeps_every_history_row(
    any_database: Database, settings: Settings
) -> None:
    services = services_on(any_database, settings)
    rack = uuid.uuid4()
    async with services.db.session() as session:
        await append_history(session, _history(rack, 3, timedelta(days=4000)))
    assert await prune_tray_history(services) == 0
    assert await _history_of(services, rack) == 3
