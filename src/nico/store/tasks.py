"""Task rows: compare-and-set status transitions and report writes.

Every status change goes through `transition_task`, which only moves a task along an
edge of `ALLOWED_TASK_TRANSITIONS`; a late writer (a cancelled workflow's last activity,
a racing promoter) changes nothing and learns so from the return value.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CursorResult,
    Dialect,
    Integer,
    Row,
    Select,
    Text,
    TextClause,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    true,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import NullType

from nico.domain import ALLOWED_TASK_TRANSITIONS, FINISHED_TASK_STATUSES, TaskStatus
from nico.store.models import ACTIVE_TASK_SQL, Provider, Site, Task, TaskTray, utcnow
from nico.store.scope_counts import rack_total, tray_total
from nico.store.status_sql import status_in
from nico.store.task_counts import site_total
from nico.text import MESSAGE_MAX_BYTES as MESSAGE_MAX_BYTES  # re-exported
from nico.text import truncate_utf8 as truncate_utf8  # re-exported


def sources_of(target: TaskStatus) -> list[str]:
    """Statuses from which `target` may be reached."""
    return [s.value for s, nexts in ALLOWED_TASK_TRANSITIONS.items() if target in nexts]


async def transition_task(
    session: AsyncSession,
    task_id: uuid.UUID,
    target: TaskStatus,
    *,
    message: str | None = None,
    report: dict[str, Any] | None = None,
    expected: TaskStatus | None = None,
    now: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Move the task to `target` if its current status allows it (or equals `expected`).

    Sets `started` on Running and `finished` on a terminal status. Returns whether the
    row changed; False means another writer got there first.
    """
    now = now or utcnow()
    allowed = [expected.value] if expected is not None else sources_of(target)
    if expected is not None and target not in ALLOWED_TASK_TRANSITIONS[expected]:
        raise ValueError(f"{expected} -> {target} is not a task transition")
    values: dict[str, Any] = {"status": target.value, "updated": now}
    if message is not None:
        values["message"] = truncate_utf8(message)
    if report is not None:
        values["report"] = report
    if target is TaskStatus.RUNNING:
        values["started"] = now
    if target.finished:
        values["finished"] = now
    if extra:
        values.update(extra)
    result = await session.execute(
        update(Task).where(Task.id == task_id, Task.status.in_(allowed)).values(**values)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def save_running_report(
    session: AsyncSession, task_id: uuid.UUID, report: dict[str, Any], message: str | None = None
) -> bool:
    """Write a live report snapshot; ignored once the task has left Running."""
    values: dict[str, Any] = {"report": report, "updated": utcnow()}
    if message is not None:
        values["message"] = truncate_utf8(message)
    result = await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == TaskStatus.RUNNING.value)
        .values(**values)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


# --- queries used by the task manager and the task endpoints --------------------------

# Tasks that hold their trays: running, or dispatched to run (the conflict check's set).
ACTIVE_FOR_CONFLICTS: tuple[str, ...] = (TaskStatus.PENDING.value, TaskStatus.RUNNING.value)
# Not finished (`activeOnly=true`, what blocks a rack delete): derived from the domain.
NOT_FINISHED: tuple[str, ...] = tuple(s.value for s in TaskStatus if s.active)
FINISHED: tuple[str, ...] = tuple(sorted(s.value for s in FINISHED_TASK_STATUSES))


async def add_task(session: AsyncSession, task: Task) -> Task:
    """Insert a task and index every targeted tray in `task_trays`."""
    await add_tasks(session, [task])
    return task


async def add_tasks(session: AsyncSession, tasks: Sequence[Task]) -> None:
    """Insert many tasks (one flush, which SQLAlchemy batches) and their `task_trays` rows
    (one executemany of plain rows: 3,500 ORM objects alone cost most of a second), so a
    100-rack submission costs a few round trips, not hundreds."""
    session.add_all(tasks)
    await session.flush()
    links = [
        link
        for task in tasks
        for link in _tray_links(task.id, task.site_id, task.created, task.status, task.targets)
    ]
    if links:
        await session.execute(insert(TaskTray), links)


def _tray_links(
    task_id: uuid.UUID,
    site_id: uuid.UUID,
    created: datetime,
    status: str,
    targets: dict[str, Any],
) -> list[dict[str, Any]]:
    """The `task_trays` rows of one task (later transitions keep `finished_status` by
    trigger)."""
    finished = status if status in FINISHED else None
    return [
        {
            "task_id": task_id,
            "tray_id": uuid.UUID(str(tray_id)),
            "site_id": site_id,
            "created": created,
            "finished_status": finished,
        }
        for ids in targets.values()
        for tray_id in ids
    ]


async def insert_tasks(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Bulk-insert task rows (column values, `created` and `targets` included) with their
    tray links: an imported history or a benchmark's thousands of tasks in two statements."""
    if not rows:
        return
    links = [
        link
        for row in rows
        for link in _tray_links(
            row["id"], row["site_id"], row["created"], row["status"], row["targets"]
        )
    ]
    await session.execute(insert(Task), rows)
    if links:
        await session.execute(insert(TaskTray), links)


async def get_task(
    session: AsyncSession, task_id: uuid.UUID, site_id: uuid.UUID | None = None
) -> Task | None:
    """The task, or None when unknown or (with `site_id`) in another site."""
    task = await session.get(Task, task_id, populate_existing=True)
    if task is None or (site_id is not None and task.site_id != site_id):
        return None
    return task


async def rack_tasks(
    session: AsyncSession, rack_id: uuid.UUID, statuses: tuple[str, ...]
) -> list[Task]:
    """A rack's tasks in the given statuses, oldest first (FIFO for the queue)."""
    result = await session.execute(
        select(Task)
        .where(Task.rack_id == rack_id, Task.status.in_(statuses))
        .order_by(Task.created, Task.id)
        .execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def racks_tasks(
    session: AsyncSession, rack_ids: Sequence[uuid.UUID], statuses: tuple[str, ...]
) -> dict[uuid.UUID, list[Task]]:
    """`rack_tasks` for many racks in one query: each rack's list oldest first."""
    result = await session.execute(
        select(Task)
        .where(Task.rack_id.in_(rack_ids), Task.status.in_(statuses))
        .order_by(Task.created, Task.id)
        .execution_options(populate_existing=True)
    )
    out: dict[uuid.UUID, list[Task]] = {rack_id: [] for rack_id in rack_ids}
    for task in result.scalars():
        out.setdefault(task.rack_id, []).append(task)
    return out


async def racks_with_waiting(session: AsyncSession) -> list[uuid.UUID]:
    result = await session.execute(
        select(Task.rack_id).where(Task.status == TaskStatus.WAITING.value).distinct()
    )
    return list(result.scalars())


@dataclass(frozen=True)
class UnfinishedTask:
    """What the reconciler needs to know of a Pending or Running task."""

    id: uuid.UUID
    rack_id: uuid.UUID
    status: TaskStatus
    workflow_id: str | None


async def unfinished_tasks(
    session: AsyncSession, *, updated_before: datetime
) -> list[UnfinishedTask]:
    """Pending and Running tasks of every site untouched since `updated_before` (the
    reconciler's work list), oldest first; reports and rules stay in the database."""
    result = await session.execute(
        select(Task.id, Task.rack_id, Task.status, Task.workflow_id)
        .where(Task.status.in_(ACTIVE_FOR_CONFLICTS), Task.updated <= updated_before)
        .order_by(Task.created, Task.id)
    )
    return [
        UnfinishedTask(task_id, rack_id, TaskStatus(status), workflow_id)
        for task_id, rack_id, status, workflow_id in result.all()
    ]


async def task_report(session: AsyncSession, task_id: uuid.UUID) -> dict[str, Any] | None:
    """The stored report of a task (None when it has none or the task is gone)."""
    report: dict[str, Any] | None = await session.scalar(
        select(Task.report).where(Task.id == task_id)
    )
    return report


async def mark_dispatched(session: AsyncSession, task_id: uuid.UUID) -> None:
    """Record that the task's workflow (id = task id) has been started."""
    await session.execute(update(Task).where(Task.id == task_id).values(workflow_id=str(task_id)))


async def mark_dispatched_many(session: AsyncSession, task_ids: Sequence[uuid.UUID]) -> None:
    """`mark_dispatched` for a batch of started tasks, in one statement."""
    if task_ids:
        # ORM bulk UPDATE by primary key: one executemany.
        await session.execute(
            update(Task), [{"id": task_id, "workflow_id": str(task_id)} for task_id in task_ids]
        )


@dataclass(frozen=True)
class TaskQuery:
    """Filters of the task lists; all compose with AND."""

    site_id: uuid.UUID
    rack_id: uuid.UUID | None = None
    tray_id: uuid.UUID | None = None
    statuses: tuple[str, ...] | None = None
    operation_type: str | None = None

    @property
    def active_only(self) -> bool:
        """Whether every wanted status is a not-finished one (the small partial index)."""
        return self.statuses is not None and set(self.statuses) <= set(NOT_FINISHED)


# The partial index's own predicate, as a literal (see models.ACTIVE_TASK_SQL).
_ACTIVE = text(f"tasks.{ACTIVE_TASK_SQL}")


# What a list shows of each task (the report only on request): the rule snapshot, targets
# and parameters stay in the database instead of being parsed for every row. Lists read
# plain rows (Core), not ORM objects: hydrating and tracking 20 tasks cost more than the
# query itself.
LIST_COLUMNS = (
    Task.id,
    Task.status,
    Task.description,
    Task.message,
    Task.rule_id,
    Task.started,
    Task.finished,
    Task.created,
    Task.updated,
    Task.created_by,
)


# A list's report column: the stored JSON text, parsed only when the list's report cache
# (`nico.schemas.tasks.report_json`) has not seen this version of the report.
_REPORT_TEXT = cast(Task.report, Text).label("report")


@dataclass(frozen=True)
class _Shape:
    """What decides a list's SQL (values are bound per request)."""

    rack: bool
    tray: bool
    statuses: tuple[str, ...] | None
    operation_type: bool
    with_report: bool

    @classmethod
    def of(cls, query: TaskQuery, with_report: bool) -> _Shape:
        return cls(
            rack=query.rack_id is not None,
            tray=query.tray_id is not None,
            statuses=query.statuses,
            operation_type=query.operation_type is not None,
            with_report=with_report,
        )

    @property
    def active_only(self) -> bool:
        return self.statuses is not None and set(self.statuses) <= set(NOT_FINISHED)


def _values(query: TaskQuery, offset: int, limit: int) -> dict[str, Any]:
    return {
        "site_id": query.site_id,
        "rack_id": query.rack_id,
        "tray_id": query.tray_id,
        "operation_type": query.operation_type,
        "offset": offset,
        "limit": limit,
    }


def _shape_filters(shape: _Shape) -> list[ColumnElement[bool] | TextClause]:
    conditions: list[ColumnElement[bool] | TextClause] = [Task.site_id == bindparam("site_id")]
    if shape.rack:
        conditions.append(Task.rack_id == bindparam("rack_id"))
    if shape.statuses is not None:
        if len(shape.statuses) == 1:  # the (site, status, created, id) index
            conditions.append(status_in(Task.status, shape.statuses))
        else:
            if shape.active_only:  # several not-finished statuses: the partial index
                conditions.append(_ACTIVE)
            if set(shape.statuses) != set(NOT_FINISHED):
                conditions.append(status_in(Task.status, shape.statuses))
    if shape.operation_type:
        conditions.append(Task.operation_type == bindparam("operation_type"))
    return conditions


@lru_cache(maxsize=256)
def _shape_statements(shape: _Shape) -> tuple[Select[Any], Select[int]]:
    """The page and count statements of one list shape, built once per process (building
    and cache-keying a statement per request cost as much as running it)."""
    conditions = _shape_filters(shape)
    columns = (*LIST_COLUMNS, _REPORT_TEXT) if shape.with_report else LIST_COLUMNS
    tray = bindparam("tray_id", type_=TaskTray.tray_id.type)
    if shape.tray and not shape.active_only:
        link_order = (TaskTray.created.desc(), TaskTray.task_id.desc())
        links = [TaskTray.tray_id == tray, TaskTray.site_id == bindparam("site_id")]
        extra = conditions[1:]
        one = shape.statuses[0] if shape.statuses and len(shape.statuses) == 1 else None
        if one in FINISHED:  # the link's own copy of a finished status: one index range
            links.append(status_in(TaskTray.finished_status, [one]))
            extra = _shape_filters(replace(shape, statuses=None))[1:]
        page = (
            select(*columns)
            .join_from(Task, TaskTray, TaskTray.task_id == Task.id)
            .where(*links, *extra)
            .order_by(*link_order)
        )
        if shape.rack:  # a tray and a rack (GET /task): the tray's links, index only
            count = select(func.count()).select_from(TaskTray).where(*links)
            count = count.join(Task, TaskTray.task_id == Task.id).where(*extra)
        else:
            count = _scope_count(shape)
    else:
        if shape.tray:
            # An OFFSET keeps PostgreSQL from turning the probe into a join that reads all
            # the tray's links: the small active index drives, each candidate one lookup.
            link = (
                select(TaskTray.task_id)
                .where(TaskTray.task_id == Task.id, TaskTray.tray_id == tray)
                .limit(1)
                .offset(0)
            )
            conditions.append(link.exists())
        page = select(*columns).where(*conditions).order_by(Task.created.desc(), Task.id.desc())
        if shape.rack and shape.tray:  # GET /task?rackId&trayId&activeOnly: the active set
            count = select(func.count()).select_from(Task).where(*conditions)
        elif shape.rack or shape.tray:
            count = _scope_count(shape)
        else:  # the site's counters: exact, and a few rows whatever the history
            count = site_total(
                bindparam("site_id", type_=Task.site_id.type),
                shape.statuses,
                _operation(shape),
            )
    page = page.offset(bindparam("offset", type_=Integer)).limit(bindparam("limit", type_=Integer))
    return page, count


def _scope_count(shape: _Shape) -> Select[int]:
    """A rack's or a tray's total from its counters plus its active tasks
    (`nico.store.scope_counts`): exact, and a few rows whatever its history, for every
    status set and operation type."""
    site = bindparam("site_id", type_=Task.site_id.type)
    operation = _operation(shape)
    if shape.tray:
        tray = bindparam("tray_id", type_=TaskTray.tray_id.type)
        return tray_total(site, tray, shape.statuses, operation)
    rack = bindparam("rack_id", type_=Task.rack_id.type)
    return rack_total(site, rack, shape.statuses, operation)


def _operation(shape: _Shape) -> BindParameter[str] | None:
    # Bound, not a literal (`status_sql`): with the type in its text, PostgreSQL's plan
    # of a tray's rare type hashed that type's tasks from a scan of the table.
    if not shape.operation_type:
        return None
    return bindparam("operation_type", type_=Task.operation_type.type)


def list_statements(
    query: TaskQuery, *, offset: int, limit: int, with_report: bool = True
) -> tuple[Select[Any], Select[int]]:
    """The page and the count statements of a task list, values bound (the plan tests
    EXPLAIN these).

    Three shapes, each reading an index in the list's order (newest first, id breaks
    ties) and stopping after the page:
    - not-finished tasks: the partial index of the site's active tasks (small whatever the
      history), a tray filter probing each candidate's link by primary key;
    - a tray's tasks: the tray's links, which carry site and creation time, in order
      (and, for one finished status, that status);
    - otherwise the tasks index whose prefix is the filter (site, rack, status or type).
    """
    page, count = _shape_statements(_Shape.of(query, with_report))
    values = _values(query, offset, limit)
    return page.params(values), count.params(values)


def page_with_total(page: Select[Any], count: Select[int]) -> Select[Any]:
    """The page statement with the total as an extra column."""
    return page.add_columns(count.scalar_subquery().label("total"))


def _raw(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """`column` as the driver returns it (same SQL): no per-row result processing."""
    return type_coerce(column, NullType()).label(column.key)


@lru_cache(maxsize=256)
def _guarded_statement(shape: _Shape) -> Select[Any]:
    """Site guard, total and page in one statement: the org's provider (no row at all when
    it has none) with the requested site's owner and Flow switch, the total, and the
    page's rows joined on (one row of NULL task columns when the page is empty).

    Its columns are raw driver values (`RawPage`): turning each row's UUIDs and UTC
    timestamps into objects cost ~17 us a row on SQLite, most of what a 20-item page
    cost over a 2-item one, while a page read again is served from the item cache by
    those values alone."""
    page, count = _shape_statements(shape)
    rows = page.subquery("page")
    guard = (
        select(
            Provider.id.label("guard_provider_id"),
            Site.provider_id.label("guard_site_provider_id"),
            Site.flow_enabled.label("guard_flow_enabled"),
        )
        .select_from(Provider)
        .outerjoin(Site, Site.id == bindparam("site_id"))
        .where(Provider.org == bindparam("org"))
        .subquery("guard")
    )
    return (
        select(
            *[_raw(c) for c in guard.c],
            count.scalar_subquery().label("total"),
            *[_raw(c) for c in rows.c],
        )
        .select_from(guard)
        .outerjoin(rows, true())
        .order_by(rows.c.created.desc(), rows.c.id.desc())
    )


# The typed columns a raw list row carries, by name (the report text needs no decoding).
_TYPED_COLUMNS: dict[str, Any] = {
    "guard_provider_id": Provider.id,
    "guard_site_provider_id": Site.provider_id,
    "guard_flow_enabled": Site.flow_enabled,
    **{column.key: column for column in LIST_COLUMNS},
}


class RawRowDecoder:
    """Turns a raw list row's driver values into what the typed columns give (UUID,
    aware UTC datetime, bool), with each column type's own result processor, so a
    decoded row equals the row a typed select returns."""

    def __init__(self, dialect: Dialect, fields: Sequence[str]) -> None:
        self._convert: list[tuple[str, int, Callable[[Any], Any] | None]] = []
        for index, name in enumerate(fields):
            column = _TYPED_COLUMNS.get(name)
            process = (
                None
                if column is None
                else column.type.dialect_impl(dialect).result_processor(dialect, None)
            )
            self._convert.append((name, index, process))

    def __call__(self, row: Sequence[Any]) -> dict[str, Any]:
        return {
            name: row[index] if process is None or row[index] is None else process(row[index])
            for name, index, process in self._convert
        }


@lru_cache(maxsize=64)
def _decoder(dialect: Dialect, fields: tuple[str, ...]) -> RawRowDecoder:
    return RawRowDecoder(dialect, fields)


@dataclass(frozen=True)
class SiteGuard:
    """What the provider-site guard needs to know, read with a list's page."""

    provider_id: uuid.UUID
    site_provider_id: uuid.UUID | None  # None: no site with that id
    flow_enabled: bool | None


async def list_tasks(
    session: AsyncSession | AsyncConnection,
    query: TaskQuery,
    *,
    offset: int,
    limit: int,
    with_report: bool = True,
) -> tuple[list[Row[Any]], int]:
    """One page of tasks, newest first (id breaks ties), and the total after filters.

    Rows are plain rows of the list columns (`LIST_COLUMNS`, plus `with_report` the
    report as its stored JSON text)."""
    if query.statuses == ():
        return [], 0
    page, count = _shape_statements(_Shape.of(query, with_report))
    values = _values(query, offset, limit)
    # The total rides along with the page as an uncorrelated scalar subquery (computed
    # once per statement): one round trip instead of two. Only a page past the end has
    # no row to carry it.
    rows = (await session.execute(page_with_total(page, count), values)).all()
    if rows:
        return list(rows), int(rows[0].total)
    return [], int((await session.execute(count, values)).scalar_one())


@dataclass(frozen=True)
class RawPage:
    """A list page as raw driver values (its `rows` name the `LIST_COLUMNS`, plus the
    report text when asked for) and `decode`, which turns one row into those columns'
    typed values by name: the caller decodes only the rows it has not seen before."""

    rows: list[Row[Any]]
    decode: Callable[[Sequence[Any]], dict[str, Any]]


async def list_tasks_guarded(
    conn: AsyncSession | AsyncConnection,
    org: str,
    query: TaskQuery,
    *,
    offset: int,
    limit: int,
    with_report: bool = True,
) -> tuple[SiteGuard | None, RawPage, int]:
    """`list_tasks` for `query.site_id` (not yet checked) together with what the site
    guard needs, in one round trip; the guard is None when the org has no provider.
    The caller judges the guard before using the page. (No wanted status left, as with
    `activeOnly` and a finished status, reads as an always-false IN: no rows, total 0.)"""
    values = {**_values(query, offset, limit), "org": org.lower()}
    result = await conn.execute(_guarded_statement(_Shape.of(query, with_report)), values)
    dialect = conn.dialect if isinstance(conn, AsyncConnection) else conn.get_bind().dialect
    decode = _decoder(dialect, tuple(result.keys()))
    rows = result.all()
    if not rows:
        return None, RawPage([], decode), 0
    first = decode(rows[0])
    guard = SiteGuard(
        first["guard_provider_id"], first["guard_site_provider_id"], first["guard_flow_enabled"]
    )
    page = RawPage([row for row in rows if row.id is not None], decode)
    return guard, page, int(first["total"])


# --- retention ---------------------------------------------------------------------------


async def prune_finished_tasks(
    session: AsyncSession, site_id: uuid.UUID, *, created_before: datetime, limit: int
) -> int:
    """Delete up to `limit` of the site's finished tasks created before `created_before`
    (oldest first) with their tray links; returns how many went. Not-finished tasks are
    never touched. Reads the (site, status, created, id) index, so a pass costs the rows
    it deletes, not the site's history."""
    ids = list(
        (
            await session.execute(
                select(Task.id)
                .where(
                    Task.site_id == site_id,
                    Task.status.in_(FINISHED),
                    Task.created < created_before,
                )
                .limit(limit)
            )
        ).scalars()
    )
    if not ids:
        return 0
    await session.execute(delete(TaskTray).where(TaskTray.task_id.in_(ids)))
    await session.execute(
        delete(Task).where(Task.id.in_(ids), Task.status.in_(FINISHED)),
        execution_options={"synchronize_session": False},
    )
    return len(ids)


# Ids per statement when looking many tasks up: under both databases' bind-parameter
# limits (an Idempotency-Key of a 100-rack request names 100 tasks).
LOOKUP_CHUNK = 1000


async def finish_times(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime | None]:
    """For each of `ids` that still exists: when it finished, None while it is not
    finished (a finished task without `finished`, from before it was recorded, counts as
    finished at its last update). Primary-key lookups, `LOOKUP_CHUNK` ids a statement."""
    wanted = sorted(set(ids))
    found: dict[uuid.UUID, datetime | None] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        rows = await session.execute(
            select(Task.id, Task.status, Task.finished, Task.updated).where(
                Task.id.in_(wanted[start : start + LOOKUP_CHUNK])
            )
        )
        for task_id, status, finished, updated in rows.all():
            found[task_id] = (finished or updated) if status in FINISHED else None
    return found
