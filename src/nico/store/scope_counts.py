"""Exact rack and tray task totals without counting history: `task_rack_counts` and
`task_tray_counts` hold the settled tasks (any status but Pending, Waiting, Running),
and a total adds a live count of the few active ones.

A task's counters are written once, when it settles, not on every transition: a 35-tray
task used to write 2 delta rows per tray on each of its three transitions (submitted,
running, finished), under SQLite's single write lock. Triggers write signed deltas in
the writer's transaction, whatever the code path, only for settled tasks:

- a rack's counts from `tasks`: +1 (site, rack, status, type) for a new settled task or
  a task that settles, -1 for a deleted settled task (or one leaving a settled key);
- a tray's counts from its links (`task_trays`): +1 for a new link and -1 for a deleted
  one when the link's task is settled, keyed by its status and type at that moment; a
  task that settles (or changes key while settled) moves every link of it.

A total is then the counters' sum over the settled statuses asked for plus a count of
the active tasks (the rack's partial active index; the tray's links with no finished
status, each joined to its task), both in one statement, so one snapshot: a task is
always in exactly one of them. Status and counters change in one transaction.

A deleted link looks its task up, so a task's links must go while the task still
exists: a BEFORE DELETE trigger on `tasks` deletes them first (the foreign key's cascade,
which runs after the task is gone, then finds none). The sweep folds the deltas into one
row per key with the site's counters (`compact_task_counts`).

The trigger SQL lives here; migration 0011 creates it from a frozen copy (0009 counted
every status).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Integer, Select, func, literal, select, text

from nico.domain import TaskStatus
from nico.store.models import ACTIVE_TASK_SQL, Task, TaskRackCount, TaskTray, TaskTrayCount
from nico.store.status_sql import status_in, status_not_in

# Statuses counted live, not by the counters: the partial active indexes' predicate.
ACTIVE: tuple[str, ...] = tuple(s.value for s in TaskStatus if s.active)


def _settled(row: str) -> str:
    return f"NOT ({row}.{ACTIVE_TASK_SQL})"


_RACK = "task_rack_counts (site_id, rack_id, status, operation_type, n)"
_TRAY = "task_tray_counts (site_id, tray_id, status, operation_type, n)"
_RACK_CHANGED_SQLITE = """(OLD.site_id IS NOT NEW.site_id OR OLD.rack_id IS NOT NEW.rack_id
    OR OLD.status IS NOT NEW.status OR OLD.operation_type IS NOT NEW.operation_type)"""
_TRAY_CHANGED_SQLITE = """(OLD.status IS NOT NEW.status
    OR OLD.operation_type IS NOT NEW.operation_type)"""
_RACK_CHANGED_POSTGRES = """(OLD.site_id IS DISTINCT FROM NEW.site_id
    OR OLD.rack_id IS DISTINCT FROM NEW.rack_id OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.operation_type IS DISTINCT FROM NEW.operation_type)"""
_TRAY_CHANGED_POSTGRES = """(OLD.status IS DISTINCT FROM NEW.status
    OR OLD.operation_type IS DISTINCT FROM NEW.operation_type)"""
# Either side settled: a move between two active statuses writes nothing.
_EITHER_SETTLED = f"""({_settled("OLD")}
    OR {_settled("NEW")})"""

_RACK_OUT = f"""INSERT INTO {_RACK}
    SELECT OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1
    WHERE {_settled("OLD")};"""
_RACK_IN = f"""INSERT INTO {_RACK}
    SELECT NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1
    WHERE {_settled("NEW")};"""
# A task's links, counted -1 under its old (status, type) if that was settled and +1
# under its new one if that is.
_MOVE_LINKS = f"""INSERT INTO {_TRAY}
    SELECT site_id, tray_id, OLD.status, OLD.operation_type, -1
    FROM task_trays WHERE task_id = OLD.id
    AND {_settled("OLD")};
    INSERT INTO {_TRAY}
    SELECT site_id, tray_id, NEW.status, NEW.operation_type, 1
    FROM task_trays WHERE task_id = NEW.id
    AND {_settled("NEW")};"""
_LINK_IN = f"""INSERT INTO {_TRAY}
    SELECT NEW.site_id, NEW.tray_id, status, operation_type, 1
    FROM tasks WHERE id = NEW.task_id
    AND {_settled("tasks")};"""
_LINK_OUT = f"""INSERT INTO {_TRAY}
    SELECT OLD.site_id, OLD.tray_id, status, operation_type, -1
    FROM tasks WHERE id = OLD.task_id
    AND {_settled("tasks")};"""
_DROP_LINKS = "DELETE FROM task_trays WHERE task_id = OLD.id;"

SQLITE_TRIGGERS: tuple[str, ...] = (
    f"""CREATE TRIGGER tasks_rack_count_insert AFTER INSERT ON tasks
WHEN {_settled("NEW")}
BEGIN
    {_RACK_IN}
END""",
    f"""CREATE TRIGGER tasks_rack_count_update
AFTER UPDATE OF site_id, rack_id, status, operation_type ON tasks
WHEN {_RACK_CHANGED_SQLITE}
    AND {_EITHER_SETTLED}
BEGIN
    {_RACK_OUT}
    {_RACK_IN}
END""",
    f"""CREATE TRIGGER tasks_rack_count_delete AFTER DELETE ON tasks
WHEN {_settled("OLD")}
BEGIN
    {_RACK_OUT}
END""",
    f"""CREATE TRIGGER tasks_tray_count_update AFTER UPDATE OF status, operation_type ON tasks
WHEN {_TRAY_CHANGED_SQLITE}
    AND {_EITHER_SETTLED}
BEGIN
    {_MOVE_LINKS}
END""",
    f"""CREATE TRIGGER tasks_drop_links BEFORE DELETE ON tasks BEGIN
    {_DROP_LINKS}
END""",
    f"""CREATE TRIGGER task_trays_count_insert AFTER INSERT ON task_trays BEGIN
    {_LINK_IN}
END""",
    f"""CREATE TRIGGER task_trays_count_delete AFTER DELETE ON task_trays BEGIN
    {_LINK_OUT}
END""",
)

POSTGRES_TRIGGERS: tuple[str, ...] = (
    # One function for insert, update and delete; each side only when settled (a
    # PL/pgSQL IF, which unlike a SELECT … WHERE reads no unassigned OLD or NEW).
    f"""CREATE FUNCTION nico_task_rack_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF {_settled("OLD")} THEN
            INSERT INTO {_RACK}
            VALUES (OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF {_settled("NEW")} THEN
            INSERT INTO {_RACK}
            VALUES (NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1);
        END IF;
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_rack_count_insert_delete AFTER INSERT OR DELETE ON tasks
FOR EACH ROW EXECUTE FUNCTION nico_task_rack_counts()""",
    f"""CREATE TRIGGER tasks_rack_count_update
AFTER UPDATE OF site_id, rack_id, status, operation_type ON tasks FOR EACH ROW
WHEN ({_RACK_CHANGED_POSTGRES}
    AND {_EITHER_SETTLED})
EXECUTE FUNCTION nico_task_rack_counts()""",
    f"""CREATE FUNCTION nico_task_tray_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_MOVE_LINKS}
    RETURN NULL;
END $$""",
    f"""CREATE TRIGGER tasks_tray_count_update AFTER UPDATE OF status, operation_type ON tasks
FOR EACH ROW
WHEN ({_TRAY_CHANGED_POSTGRES}
    AND {_EITHER_SETTLED})
EXECUTE FUNCTION nico_task_tray_counts_move()""",
    f"""CREATE FUNCTION nico_task_drop_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_DROP_LINKS}
    RETURN OLD;
END $$""",
    """CREATE TRIGGER tasks_drop_links BEFORE DELETE ON tasks
FOR EACH ROW EXECUTE FUNCTION nico_task_drop_links()""",
    f"""CREATE FUNCTION nico_task_tray_counts_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_LINK_IN}
    ELSE
        {_LINK_OUT}
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER task_trays_count_insert_delete AFTER INSERT OR DELETE ON task_trays
FOR EACH ROW EXECUTE FUNCTION nico_task_tray_counts_link()""",
)

# Keys the sweep folds (`nico.store.task_counts.compact_task_counts`).
RACK_KEY = "site_id, rack_id, status, operation_type"
TRAY_KEY = "site_id, tray_id, status, operation_type"


def _split(statuses: Sequence[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """The settled statuses to sum from the counters and the active ones to count live
    (None: all of them; an empty list: none)."""
    if statuses is None:
        return None, None
    return [s for s in statuses if s not in ACTIVE], [s for s in statuses if s in ACTIVE]


def _total(counted: Select[int] | None, live: Select[int] | None) -> Select[int]:
    parts: list[ColumnElement[int]] = [
        q.scalar_subquery() for q in (counted, live) if q is not None
    ]
    if not parts:  # an empty status set
        return select(literal(0, Integer))
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return select(total)


def _counted(
    table: type[TaskRackCount] | type[TaskTrayCount],
    scope: ColumnElement[bool],
    settled: list[str] | None,
    operation_type: ColumnElement[str] | str | None,
) -> Select[int] | None:
    if settled == []:
        return None
    query = select(func.coalesce(func.sum(table.n), 0)).where(scope)
    if settled is not None:
        query = query.where(status_in(table.status, settled))
    else:  # every settled status: never a stray row of an active one, counted live
        query = query.where(status_not_in(table.status, ACTIVE))
    if operation_type is not None:
        query = query.where(table.operation_type == operation_type)
    return query


def rack_total(
    site_id: ColumnElement[uuid.UUID] | uuid.UUID,
    rack_id: ColumnElement[uuid.UUID] | uuid.UUID,
    statuses: Sequence[str] | None = None,
    operation_type: ColumnElement[str] | str | None = None,
) -> Select[int]:
    """The number of the rack's tasks in the site (in `statuses`, of `operation_type`):
    its counters plus its active tasks (the partial active index)."""
    settled, active = _split(statuses)
    counted = _counted(
        TaskRackCount,
        (TaskRackCount.site_id == site_id) & (TaskRackCount.rack_id == rack_id),
        settled,
        operation_type,
    )
    live: Select[int] | None = None
    if active != []:
        # The partial index's predicate word for word (SQLite uses it only so).
        live = select(func.count()).select_from(Task)
        live = live.where(Task.site_id == site_id, Task.rack_id == rack_id)
        live = live.where(text(f"tasks.{ACTIVE_TASK_SQL}"))
        if active is not None and set(active) != set(ACTIVE):
            live = live.where(status_in(Task.status, active))
        if operation_type is not None:
            live = live.where(Task.operation_type == operation_type)
        live = live.correlate(None)  # its own tasks, also inside a list's statement
    return _total(counted, live)


def tray_total(
    site_id: ColumnElement[uuid.UUID] | uuid.UUID,
    tray_id: ColumnElement[uuid.UUID] | uuid.UUID,
    statuses: Sequence[str] | None = None,
    operation_type: ColumnElement[str] | str | None = None,
) -> Select[int]:
    """The number of the site's tasks targeting the tray (in `statuses`, of
    `operation_type`): its counters plus its active tasks (its links with no finished
    status, one index range, each joined to its task)."""
    settled, active = _split(statuses)
    counted = _counted(
        TaskTrayCount,
        (TaskTrayCount.site_id == site_id) & (TaskTrayCount.tray_id == tray_id),
        settled,
        operation_type,
    )
    live: Select[int] | None = None
    if active != []:
        # Driven by the tray's unfinished links, each task one primary-key probe (a join
        # let SQLite walk every site's active tasks instead).
        task = select(Task.id).where(
            Task.id == TaskTray.task_id,
            status_in(Task.status, ACTIVE if active is None else active),
        )
        if operation_type is not None:
            task = task.where(Task.operation_type == operation_type)
        live = (
            select(func.count())
            .select_from(TaskTray)
            .where(
                TaskTray.tray_id == tray_id,
                TaskTray.site_id == site_id,
                TaskTray.finished_status.is_(None),
                task.correlate(TaskTray).exists(),
            )
            .correlate(None)  # its own links, also inside a list's statement
        )
    return _total(counted, live)
