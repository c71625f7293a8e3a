"""Rack locks: a rack delete waits for a submission in flight on SQLite and PostgreSQL,
SQLite's in-process locks do not pile up, and split commands on SQLite warn loudly."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from nico.api.app import create_app
from nico.cli.serve import warn_if_sqlite
from nico.config import Settings
from nico.domain import TaskStatus
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.db import Database
from nico.store.models import Task
from nico.tasks import locks
from nico.tasks.locks import locked_racks
from tests.conftest import TokenFactory
from tests.support.inventory import make_site_with_rack
from tests.support.tasks import BASE, services_on


@pytest.fixture
async def svc(any_database: Database, settings: Settings) -> Services:
    return services_on(any_database, settings)


@pytest.fixture
async def http(svc: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(svc))
    async with httpx.AsyncClient(transport=transport, base_url="http://nico.test") as c:
        yield c


async def test_rack_delete_waits_for_a_submission_in_flight_then_refuses(
    svc: Services, http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    rack = await make_site_with_rack(svc)
    auth = {"Authorization": f"Bearer {make_token()}"}
    async with locked_racks(svc.db, [rack.rack_id]) as session:
        # A submission holds the rack's lock while it checks conflicts and adds its task.
        deleting = asyncio.create_task(
            http.delete(f"{BASE}/rack/{rack.rack_id}?siteId={rack.site_id}", headers=auth)
        )
        await asyncio.sleep(0.3)
        assert not deleting.done()
        task = Task(
            site_id=rack.site_id,
            rack_id=rack.rack_id,
            operation_type="PowerControl",
            operation_code="power_on",
            status=TaskStatus.PENDING.value,
            targets={"Compute": [str(rack.trays["Compute"][0])]},
        )
        await task_store.add_task(session, task)

    response = await deleting
    assert response.status_code == 409, response.text
    assert response.json()["data"] == {"taskIds": str(task.id)}
    rack_view = await http.get(f"{BASE}/rack/{rack.rack_id}?siteId={rack.site_id}", headers=auth)
    assert rack_view.status_code == 200


async def test_sqlite_rack_locks_are_dropped_once_released(services: Services) -> None:
    racks = [uuid.uuid4() for _ in range(50)]
    for rack_id in racks:
        async with locked_racks(services.db, [rack_id]):
            pass
    gc.collect()
    assert not {rack_id for _, rack_id in list(locks._local_locks)} & set(racks)


@pytest.mark.parametrize("command", ["api", "worker"])
async def test_split_commands_on_sqlite_warn_that_postgresql_is_required(
    services: Services, caplog: pytest.LogCaptureFixture, command: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="nico"):
        warn_if_sqlite(services, command)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"nico {command} is using SQLite" in record.getMessage()
    assert "Split deployments need PostgreSQL" in record.getMessage()
