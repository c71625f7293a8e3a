"""Helpers for task-manager tests: services on any database, extra racks in one site,
reading tasks back, and playing the workflow's part in status changes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from nico import provisioning
from nico.config import Settings
from nico.domain import TaskStatus
from nico.schemas.inventory import RackCreateRequest
from nico.services import Services, build_services
from nico.store import inventory
from nico.store.db import Database
from nico.store.models import Site, Task
from nico.store.tasks import transition_task
from tests.support.inventory import MadeRack, nvl72_body

BASE = "/v2/org/demo/nico"


def services_on(db: Database, settings: Settings) -> Services:
    """Real services whose database is `db` (SQLite or PostgreSQL from `any_database`)."""
    services = build_services(settings, create_keys=True)
    services.db = db
    return services


async def add_rack(services: Services, site_id: uuid.UUID, name: str) -> MadeRack:
    """Another NVL72-shaped rack in an existing site."""
    async with services.db.session() as session:
        site = await session.get(Site, site_id)
        assert site is not None
        body = nvl72_body(str(site_id), name)
        rack = await provisioning.import_rack(
            session, site, RackCreateRequest.model_validate(body), services.secrets
        )
        trays = (await inventory.trays_of_racks(session, [rack.id]))[rack.id]
    by_type: dict[str, list[uuid.UUID]] = {}
    for tray in sorted(trays, key=lambda t: t.name):
        by_type.setdefault(tray.type, []).append(tray.id)
    return MadeRack(
        site_id=site_id, rack_id=rack.id, trays=by_type, tray_names={t.id: t.name for t in trays}
    )


async def load_task(services: Services, task_id: uuid.UUID | str) -> Task:
    """The task row as stored now (every test helper reads tasks through this one)."""
    async with services.db.session() as session:
        task = await session.get(Task, uuid.UUID(str(task_id)), populate_existing=True)
        assert task is not None
        return task


async def count_tasks(services: Services, **where: Any) -> int:
    async with services.db.session() as session:
        query = select(func.count()).select_from(Task).filter_by(**where)
        return int((await session.execute(query)).scalar_one())


async def statuses(services: Services, rack_id: uuid.UUID) -> list[str]:
    """Statuses of a rack's tasks, oldest first."""
    async with services.db.session() as session:
        result = await session.execute(
            select(Task.status).where(Task.rack_id == rack_id).order_by(Task.created, Task.id)
        )
        return list(result.scalars())


async def finish(
    services: Services, task_id: uuid.UUID | str, status: TaskStatus = TaskStatus.SUCCEEDED
) -> None:
    """Do what a workflow does: Pending -> Running -> `status`."""
    tid = uuid.UUID(str(task_id))
    async with services.db.session() as session:
        assert await transition_task(session, tid, TaskStatus.RUNNING, message="Running")
        assert await transition_task(session, tid, status, message=status.value)
