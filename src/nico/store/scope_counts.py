"""Exact rack and tray task totals without counting history: `task_rack_counts` and
`task_tray_counts`, kept the way `task_counts` is (`nico.store.task_counts`).

Triggers write signed deltas in the writer's transaction, whatever the code path:

- a rack's counts from `tasks`: +1 (site, rack, status, type) for a new task, -1 old /
  +1 new when one of those changes, -1 for a deleted task;
- a tray's counts from its links (`task_trays`): +1 for a new link and -1 for a deleted
  one, keyed by the link's task's status and type at that moment; a task's status change
  moves every link of it (-1 old, +1 new).

A deleted link looks its task up, so a task's links must go while the task still
exists: a BEFORE DELETE trigger on `tasks` deletes them first (the foreign key's cascade,
which runs after the task is gone, then finds none). The sweep folds the deltas into one
row per key with the site's counters (`compact_task_counts`), so a rack's or a tray's
total, with any status set and operation type, reads a few rows.

The trigger SQL lives here; migration 0009 creates it from a frozen copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.sql import Select

from nico.store.models import TaskRackCount, TaskTrayCount

_RACK = "task_rack_counts (site_id, rack_id, status, operation_type, n)"
_TRAY = "task_tray_counts (site_id, tray_id, status, operation_type, n)"

# A task's links, counted -1 under its old (status, type) and +1 under its new one.
_MOVE_LINKS = f"""INSERT INTO {_TRAY}
    SELECT site_id, tray_id, OLD.status, OLD.operation_type, -1
    FROM task_trays WHERE task_id = OLD.id;
    INSERT INTO {_TRAY}
    SELECT site_id, tray_id, NEW.status, NEW.operation_type, 1
    FROM task_trays WHERE task_id = NEW.id;"""
_LINK_IN = f"""INSERT INTO {_TRAY}
    SELECT NEW.site_id, NEW.tray_id, status, operation_type, 1
    FROM tasks WHERE id = NEW.task_id;"""
_LINK_OUT = f"""INSERT INTO {_TRAY}
    SELECT OLD.site_id, OLD.tray_id, status, operation_type, -1
    FROM tasks WHERE id = OLD.task_id;"""
_DROP_LINKS = "DELETE FROM task_trays WHERE task_id = OLD.id;"

SQLITE_TRIGGERS: tuple[str, ...] = (
    f"""CREATE TRIGGER tasks_rack_count_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO {_RACK}
    VALUES (NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1);
END""",
    f"""CREATE TRIGGER tasks_rack_count_update
AFTER UPDATE OF site_id, rack_id, status, operation_type ON tasks
WHEN OLD.site_id IS NOT NEW.site_id OR OLD.rack_id IS NOT NEW.rack_id
    OR OLD.status IS NOT NEW.status OR OLD.operation_type IS NOT NEW.operation_type
BEGIN
    INSERT INTO {_RACK}
    VALUES (OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1),
           (NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1);
END""",
    f"""CREATE TRIGGER tasks_rack_count_delete AFTER DELETE ON tasks BEGIN
    INSERT INTO {_RACK}
    VALUES (OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1);
END""",
    f"""CREATE TRIGGER tasks_tray_count_update AFTER UPDATE OF status, operation_type ON tasks
WHEN OLD.status IS NOT NEW.status OR OLD.operation_type IS NOT NEW.operation_type
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
    f"""CREATE FUNCTION nico_task_rack_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO {_RACK}
        VALUES (OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO {_RACK}
        VALUES (NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1);
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_rack_count_insert_delete AFTER INSERT OR DELETE ON tasks
FOR EACH ROW EXECUTE FUNCTION nico_task_rack_counts()""",
    """CREATE TRIGGER tasks_rack_count_update
AFTER UPDATE OF site_id, rack_id, status, operation_type ON tasks FOR EACH ROW
WHEN (OLD.site_id IS DISTINCT FROM NEW.site_id OR OLD.rack_id IS DISTINCT FROM NEW.rack_id
    OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.operation_type IS DISTINCT FROM NEW.operation_type)
EXECUTE FUNCTION nico_task_rack_counts()""",
    f"""CREATE FUNCTION nico_task_tray_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_MOVE_LINKS}
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_tray_count_update AFTER UPDATE OF status, operation_type ON tasks
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
    OR OLD.operation_type IS DISTINCT FROM NEW.operation_type)
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


def _filtered(
    query: Select[int],
    table: type[TaskRackCount] | type[TaskTrayCount],
    statuses: Sequence[str] | None,
    operation_type: ColumnElement[str] | str | None,
) -> Select[int]:
    if statuses is not None:
        query = query.where(table.status.in_(statuses))
    if operation_type is not None:
        query = query.where(table.operation_type == operation_type)
    return query


def rack_total(
    site_id: ColumnElement[uuid.UUID] | uuid.UUID,
    rack_id: ColumnElement[uuid.UUID] | uuid.UUID,
    statuses: Sequence[str] | None = None,
    operation_type: ColumnElement[str] | str | None = None,
) -> Select[int]:
    """The number of the rack's tasks in the site (in `statuses`, of `operation_type`)."""
    query = select(func.coalesce(func.sum(TaskRackCount.n), 0)).where(
        TaskRackCount.site_id == site_id, TaskRackCount.rack_id == rack_id
    )
    return _filtered(query, TaskRackCount, statuses, operation_type)


def tray_total(
    site_id: ColumnElement[uuid.UUID] | uuid.UUID,
    tray_id: ColumnElement[uuid.UUID] | uuid.UUID,
    statuses: Sequence[str] | None = None,
    operation_type: ColumnElement[str] | str | None = None,
) -> Select[int]:
    """The number of the site's tasks targeting the tray (in `statuses`, of
    `operation_type`)."""
    query = select(func.coalesce(func.sum(TaskTrayCount.n), 0)).where(
        TaskTrayCount.site_id == site_id, TaskTrayCount.tray_id == tray_id
    )
    return _filtered(query, TaskTrayCount, statuses, operation_type)
