"""Task lists read an index in their own order and stop after the page, on both databases.

A site keeps every task it ever ran, so a list whose plan walks the site's history (or
sorts it) gets slower every day. These tests seed a few thousand finished tasks, ask each
database for its plan of every list shape (site, rack, tray; activeOnly, status,
operationType) and fail on a full scan of the tasks or a sort for the ORDER BY, so a later
change cannot quietly bring the scan back. They also check each answer against the rows.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from nico.store.db import Database
from nico.store.models import Provider, Site, utcnow
from nico.store.tasks import (
    NOT_FINISHED,
    TaskQuery,
    _guarded_statement,
    _Shape,
    _shape_statements,
    _values,
    insert_tasks,
    list_statements,
    list_tasks,
    page_with_total,
)
from tests.support.plans import generic_plan, query_plan, sorts_inside_a_limit

RACKS = 20
TRAYS_PER_RACK = 5
TASKS = 2400
ACTIVE_EVERY = 400  # a handful of not-finished tasks, as on a real site


@dataclass
class History:
    site_id: uuid.UUID
    racks: list[uuid.UUID]
    trays: dict[uuid.UUID, list[uuid.UUID]]
    rows: list[dict[str, Any]] = field(default_factory=list)


def _status(i: int) -> str:
    if i % ACTIVE_EVERY == 0:
        return "Running"
    if i % ACTIVE_EVERY == 1:
        return "Waiting"
    return "Failed" if i % 97 == 0 else "Succeeded"


async def _seed(db: Database) -> History:
    """One site with TASKS finished tasks over RACKS racks, and a second site's tasks on
    the same trays (so the site filter matters)."""
    provider_id, site_id, other_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    racks = [uuid.uuid4() for _ in range(RACKS)]
    history = History(
        site_id=site_id,
        racks=racks,
        trays={r: [uuid.uuid4() for _ in range(TRAYS_PER_RACK)] for r in racks},
    )
    start = utcnow() - timedelta(days=365)
    rows = []
    for i in range(TASKS):
        rack = racks[i % RACKS]
        created = start + timedelta(minutes=i // 3)  # ties: id breaks them
        rows.append(
            {
                "id": uuid.uuid4(),
                "site_id": other_id if i % 50 == 7 else site_id,
                "rack_id": rack,
                "operation_type": "BringUp" if i % 61 == 0 else "PowerControl",
                "operation_code": "power_on",
                "status": _status(i),
                "targets": {"Compute": [str(t) for t in history.trays[rack]]},
                "created": created,
                "updated": created,
            }
        )
    async with db.session() as session:
        session.add(Provider(id=provider_id, org=f"plans-{provider_id.hex[:8]}", name="p"))
        await session.flush()
        session.add_all(
            [
                Site(id=site_id, provider_id=provider_id, name="main"),
                Site(id=other_id, provider_id=provider_id, name="other"),
            ]
        )
        await session.flush()
        await insert_tasks(session, rows)
    history.rows = rows
    await _analyze(db)
    return history


async def _analyze(db: Database) -> None:
    """Fresh planner statistics, as a site that has been running a while has."""
    if db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
        return
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE tasks")
        await conn.exec_driver_sql("VACUUM ANALYZE task_trays")


def _cases(h: History) -> dict[str, TaskQuery]:
    rack = h.racks[3]
    tray = h.trays[rack][2]
    active = tuple(sorted(NOT_FINISHED))
    return {
        "site": TaskQuery(site_id=h.site_id),
        "site activeOnly": TaskQuery(site_id=h.site_id, statuses=active),
        "site status=Running": TaskQuery(site_id=h.site_id, statuses=("Running",)),
        "site status=Failed": TaskQuery(site_id=h.site_id, statuses=("Failed",)),
        "site operationType": TaskQuery(site_id=h.site_id, operation_type="BringUp"),
        "site rackId": TaskQuery(site_id=h.site_id, rack_id=rack),
        "site trayId status=Failed": TaskQuery(
            site_id=h.site_id, tray_id=tray, statuses=("Failed",)
        ),
        "site trayId status=Succeeded": TaskQuery(
            site_id=h.site_id, tray_id=tray, statuses=("Succeeded",)
        ),
        "site trayId status=Terminated": TaskQuery(
            site_id=h.site_id, tray_id=tray, statuses=("Terminated",)
        ),
        "site rackId status=Failed": TaskQuery(
            site_id=h.site_id, rack_id=rack, statuses=("Failed",)
        ),
        "site trayId operationType": TaskQuery(
            site_id=h.site_id, tray_id=tray, operation_type="BringUp"
        ),
        "site trayId status=Running": TaskQuery(
            site_id=h.site_id, tray_id=tray, statuses=("Running",)
        ),
        "site status=Running operationType": TaskQuery(
            site_id=h.site_id, statuses=("Running",), operation_type="BringUp"
        ),
        "site status=Failed,Succeeded": TaskQuery(
            site_id=h.site_id, statuses=("Failed", "Succeeded")
        ),
        "rack status=Running": TaskQuery(site_id=h.site_id, rack_id=rack, statuses=("Running",)),
        "rack operationType": TaskQuery(site_id=h.site_id, rack_id=rack, operation_type="BringUp"),
        "rack": TaskQuery(site_id=h.site_id, rack_id=rack),
        "rack activeOnly": TaskQuery(site_id=h.site_id, rack_id=rack, statuses=active),
        "tray": TaskQuery(site_id=h.site_id, tray_id=tray),
        "tray activeOnly": TaskQuery(site_id=h.site_id, tray_id=tray, statuses=active),
    }


# Counts whose matching rows are most of the site would be a scan of the history; the
# site-wide counts (site, status, operationType, activeOnly) read the task counters
# instead (`nico.store.task_counts`), a rack's or a tray's its own counters plus its few
# active tasks (`nico.store.scope_counts`), so every count is checked.
_BROAD_COUNTS: set[str] = set()
# Shapes whose page plan is the planner's choice (their count and answer are checked).
# A tray and one finished status read the links' own copy of it
# (`task_trays.finished_status`). A rack and one rare status: PostgreSQL may take the
# (rack_id, status) index and sort the few rows it finds; a tray and a rare operation
# type: it may hash the tray's links against that type's tasks; a rack and a rare type: it
# may AND the type's and the rack's indexes and sort what both hold.
_PLANNER_CHOICE: set[str] = {
    "site rackId status=Failed",
    "site trayId operationType",
    "rack operationType",
}


def _expected(h: History, q: TaskQuery) -> list[uuid.UUID]:
    def keep(row: dict[str, Any]) -> bool:
        return (
            row["site_id"] == q.site_id
            and (q.rack_id is None or row["rack_id"] == q.rack_id)
            and (q.tray_id is None or str(q.tray_id) in row["targets"]["Compute"])
            and (q.statuses is None or row["status"] in q.statuses)
            and (q.operation_type is None or row["operation_type"] == q.operation_type)
        )

    rows = sorted(filter(keep, h.rows), key=lambda r: (r["created"], r["id"]), reverse=True)
    return [r["id"] for r in rows]


def _scans_history(db: Database, plan: str) -> bool:
    if db.is_sqlite:
        return any(line.startswith(("SCAN tasks", "SCAN task_trays")) for line in plan.splitlines())
    # A small table (the task counters) may be read whole; the history never.
    return any(
        f"Seq Scan on {t} " in line for t in ("tasks", "task_trays") for line in plan.splitlines()
    )


# What a rack's or a tray's total may read besides its counters: its active tasks only
# (the partial active indexes, a task or a link by primary key, a tray's links with no
# finished status), never an index range over its history.
_LIVE_INDEXES = {
    "ix_tasks_site_rack_active",
    "ix_tasks_site_active",
    "ix_task_trays_tray_site_finished",  # with finished_status IS NULL (checked below)
    "sqlite_autoindex_tasks_1",
    "sqlite_autoindex_task_trays_1",
    "tasks_pkey",
    "task_trays_pkey",
}
_COUNTER_INDEXES = {"ix_task_rack_counts_key", "ix_task_tray_counts_key"}


def _reads_history(plan: str) -> bool:
    """Whether the plan reads the tasks or their tray links other than by the small
    active set, rather than only the counters and that set."""
    indexes = set(re.findall(r"(?:USING (?:COVERING )?INDEX|using|Index Scan on) (\w+)", plan))
    if not indexes <= _LIVE_INDEXES | _COUNTER_INDEXES:
        return True
    if "ix_task_trays_tray_site_finished" in indexes and not re.search(
        r"finished_status(=\?| IS NULL)", plan
    ):
        return True  # the tray's links of every status: its history
    # A table read without any index at all (a scan, or SQLite's automatic index).
    return re.search(r"\b(SCAN|Seq Scan on|AUTOMATIC)\b.*\b(tasks|task_trays)\b", plan) is not None


def _sorts(db: Database, plan: str) -> bool:
    return "TEMP B-TREE" in plan if db.is_sqlite else "Sort" in plan


async def test_every_task_list_reads_an_index_in_order(any_database: Database) -> None:
    history = await _seed(any_database)
    for name, query in _cases(history).items():
        page, count = list_statements(query, offset=0, limit=20)
        if name not in _PLANNER_CHOICE:
            page_plan = await query_plan(any_database, page)
            assert not _scans_history(any_database, page_plan), f"{name} page:\n{page_plan}"
            assert not _sorts(any_database, page_plan), f"{name} page sorts:\n{page_plan}"
        if name not in _BROAD_COUNTS:
            count_plan = await query_plan(any_database, count)
            assert not _scans_history(any_database, count_plan), f"{name} count:\n{count_plan}"
            if (query.rack_id is None) != (query.tray_id is None):
                # A rack's or a tray's total: its counters and its active tasks, not its
                # history.
                assert not _reads_history(count_plan), f"{name} count:\n{count_plan}"
            # What runs: the page with its total as a scalar subquery, one statement.
            if name in _PLANNER_CHOICE:
                continue
            both = await query_plan(any_database, page_with_total(page, count))
            assert not _scans_history(any_database, both), f"{name} page+total:\n{both}"
            assert not _sorts(any_database, both), f"{name} page+total sorts:\n{both}"


@pytest.mark.postgres
async def test_every_task_list_keeps_one_plan_good_for_any_values(
    postgres_database: Database,
) -> None:
    """What a PostgreSQL request runs: the statement with the site guard, the page and
    its total, planned once per read connection for any site, tray, page size and offset
    (`Database.read`). That one plan must not scan the history or sort it, for every
    list shape; a rack's or a tray's total reads its counters and active tasks only."""
    history = await _seed(postgres_database)
    for name, query in _cases(history).items():
        for with_report in (False, True):
            statement = _guarded_statement(_Shape.of(query, with_report))
            values = {**_values(query, 0, 20), "org": "plans"}
            plan = await generic_plan(postgres_database, statement, values)
            what = f"{name}{' includeReport' if with_report else ''}"
            assert not _scans_history(postgres_database, plan), f"{what}:\n{plan}"
            # A planner's-choice shape may sort one rack's or tray's tasks of one status or
            # type (bounded by them, never the site's history); no other shape may sort.
            if name not in _PLANNER_CHOICE:
                assert not sorts_inside_a_limit(plan), f"{what} sorts its rows:\n{plan}"
        if (query.rack_id is None) != (query.tray_id is None):
            count = _shape_statements(_Shape.of(query, False))[1]
            count_plan = await generic_plan(postgres_database, count, values)
            assert not _reads_history(count_plan), f"{name} total:\n{count_plan}"


@pytest.mark.parametrize("page_size", [20, 7])
async def test_every_task_list_answers_newest_first_with_its_total(
    any_database: Database, page_size: int
) -> None:
    history = await _seed(any_database)
    for name, query in _cases(history).items():
        expected = _expected(history, query)
        async with any_database.session() as session:
            first, total = await list_tasks(session, query, offset=0, limit=page_size)
            second, _ = await list_tasks(session, query, offset=page_size, limit=page_size)
        assert total == len(expected), name
        assert [t.id for t in first + second] == expected[: 2 * page_size], name
