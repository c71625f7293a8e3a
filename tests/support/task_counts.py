"""Task counter checks shared by the store and API tests: counters against the rows."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from nico.domain import TaskStatus
from nico.store.db import Database
from nico.store.models import Provider, Site, Task, TaskCount, utcnow
from nico.store.tasks import TaskQuery, list_tasks

Key = tuple[uuid.UUID, str, str]
STATUSES = [s.value for s in TaskStatus if s is not TaskStatus.UNKNOWN]


async def make_site(db: Database) -> uuid.UUID:
    provider_id, site_id = uuid.uuid4(), uuid.uuid4()
    async with db.session() as session:
        session.add(Provider(id=provider_id, org=f"counts-{provider_id.hex[:8]}", name="p"))
        await session.flush()
        session.add(Site(id=site_id, provider_id=provider_id, name="s"))
    return site_id


def make_row(
    site_id: uuid.UUID, status: str, kind: str = "PowerControl", age: int = 0
) -> dict[str, Any]:
    created = utcnow() - timedelta(days=age)
    return {
        "id": uuid.uuid4(),
        "site_id": site_id,
        "rack_id": uuid.uuid4(),
        "operation_type": kind,
        "operation_code": "power_on",
        "status": status,
        "targets": {"Compute": [str(uuid.uuid4())]},
        "created": created,
        "updated": created,
    }


async def counted(db: Database) -> Counter[Key]:
    async with db.session() as session:
        rows = await session.execute(
            select(
                TaskCount.site_id, TaskCount.status, TaskCount.operation_type, func.sum(TaskCount.n)
            ).group_by(TaskCount.site_id, TaskCount.status, TaskCount.operation_type)
        )
        return Counter({(s, st, op): int(n) for s, st, op, n in rows if n})


async def actual_counts(db: Database) -> Counter[Key]:
    async with db.session() as session:
        rows = await session.execute(
            select(Task.site_id, Task.status, Task.operation_type, func.count()).group_by(
                Task.site_id, Task.status, Task.operation_type
            )
        )
        return Counter({(s, st, op): int(n) for s, st, op, n in rows})


async def assert_exact(db: Database, site_id: uuid.UUID | None = None) -> None:
    """Counters equal the rows, and the list totals (which read them) equal the rows."""
    actual = await actual_counts(db)
    assert await counted(db) == actual
    if site_id is None:
        return
    async with db.session() as session:
        for statuses in [None, *[(s,) for s in STATUSES], ("Pending", "Running", "Waiting")]:
            _, total = await list_tasks(
                session, TaskQuery(site_id=site_id, statuses=statuses), offset=0, limit=1
            )
            want = sum(
                n
                for (s, st, _), n in actual.items()
                if s == site_id and (statuses is None or st in statuses)
            )
            assert total == want, statuses
        _, total = await list_tasks(
            session, TaskQuery(site_id=site_id, operation_type="BringUp"), offset=0, limit=1
        )
        assert total == sum(
            n for (s, _, op), n in actual.items() if s == site_id and op == "BringUp"
        )
