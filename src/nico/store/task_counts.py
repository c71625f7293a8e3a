"""Exact task totals without counting history: the `task_counts` deltas.

Every insert, delete, or change of a task's site, status or operation type writes signed
deltas into `task_counts` from a trigger on `tasks`, in the same transaction (so a total
is exact at every commit, whichever code path wrote the task: submission, bulk import,
status transition, cancel, retention prune, a site's cascade delete). Writers only insert
deltas, never update a shared counter row, so concurrent task writers neither wait for
one another nor deadlock. The sweep folds the deltas into one row per (site, status,
operation type) key (`compact_task_counts`); between sweeps a sum reads the folded rows
plus the few deltas written since.

The trigger SQL lives here; migration 0005 creates it from a frozen copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import BindParameter, ColumnElement, bindparam, func, select, text
from sqlalchemy.sql import Select

from nico.store.db import Database
from nico.store.models import Site, TaskCount
from nico.store.scope_counts import RACK_KEY, TRAY_KEY
from nico.store.status_sql import status_in

_COLUMNS = "site_id, status, operation_type, n"

SQLITE_TRIGGERS: tuple[str, ...] = (
    f"""CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts ({_COLUMNS})
    VALUES (NEW.site_id, NEW.status, NEW.operation_type, 1);
END""",
    f"""CREATE TRIGGER tasks_count_update AFTER UPDATE OF site_id, status, operation_type ON tasks
WHEN OLD.site_id IS NOT NEW.site_id OR OLD.status IS NOT NEW.status
    OR OLD.operation_type IS NOT NEW.operation_type
BEGIN
    INSERT INTO task_counts ({_COLUMNS})
    VALUES (OLD.site_id, OLD.status, OLD.operation_type, -1),
           (NEW.site_id, NEW.status, NEW.operation_type, 1);
END""",
    f"""CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
    INSERT INTO task_counts ({_COLUMNS})
    VALUES (OLD.site_id, OLD.status, OLD.operation_type, -1);
END""",
)

POSTGRES_TRIGGERS: tuple[str, ...] = (
    f"""CREATE FUNCTION nico_task_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO task_counts ({_COLUMNS})
        VALUES (OLD.site_id, OLD.status, OLD.operation_type, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO task_counts ({_COLUMNS})
        VALUES (NEW.site_id, NEW.status, NEW.operation_type, 1);
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_count_insert_delete AFTER INSERT OR DELETE ON tasks
FOR EACH ROW EXECUTE FUNCTION nico_task_counts()""",
    """CREATE TRIGGER tasks_count_update AFTER UPDATE OF site_id, status, operation_type
ON tasks FOR EACH ROW
WHEN (OLD.site_id IS DISTINCT FROM NEW.site_id OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.operation_type IS DISTINCT FROM NEW.operation_type)
EXECUTE FUNCTION nico_task_counts()""",
)

_KEY = "site_id, status, operation_type"

# A key folded already is one row (never 0: deltas are +-1, folded sums are not 0), so a
# pass folds only keys with more rows: a fleet's tray counters are tens of thousands of
# settled rows, and rewriting them all every pass held SQLite's write lock for ~0.4 s
# (every writer waiting) and left as many dead rows on PostgreSQL.
_UNSETTLED = "HAVING COUNT(*) > 1"

# Every delta table the sweep folds, with its key: the site's counters here, the racks'
# and the trays' (`nico.store.scope_counts`).
FOLDED: tuple[tuple[str, str], ...] = (
    ("task_counts", _KEY),
    ("task_rack_counts", RACK_KEY),
    ("task_tray_counts", TRAY_KEY),
)


def _compact_postgres(table: str, key: str) -> str:
    """One statement, one snapshot. It deletes only the deltas it sees committed (a
    concurrent writer's new ones stay for the next pass) and writes back their sums; a
    concurrent compaction waits on the rows, then skips those already gone. Only keys
    with more than one row are touched (`_UNSETTLED`)."""
    return (
        f"WITH gone AS (DELETE FROM {table} WHERE ({key}) IN"
        f" (SELECT {key} FROM {table} GROUP BY {key} {_UNSETTLED}) RETURNING {key}, n)"
        f" INSERT INTO {table} ({key}, n)"
        f" SELECT {key}, SUM(n) FROM gone GROUP BY {key} HAVING SUM(n) <> 0"
    )


def site_total(
    site_id: ColumnElement[uuid.UUID] | uuid.UUID,
    statuses: Sequence[str] | None = None,
    operation_type: ColumnElement[str] | str | None = None,
) -> Select[int]:
    """The number of the site's tasks (in `statuses`, of `operation_type`), exact."""
    query = select(func.coalesce(func.sum(TaskCount.n), 0)).where(TaskCount.site_id == site_id)
    if statuses is not None:
        query = query.where(status_in(TaskCount.status, statuses))
    if operation_type is not None:
        query = query.where(TaskCount.operation_type == operation_type)
    return query


def totals_by_status_and_operation() -> Select[str, str, int]:
    """Tasks of every site by status and operation type (what /metrics shows)."""
    n = func.sum(TaskCount.n)
    return (
        select(TaskCount.status, TaskCount.operation_type, n)
        .group_by(TaskCount.status, TaskCount.operation_type)
        .having(n != 0)
    )


def totals_by_site_name(status: str) -> Select[str, int]:
    """Tasks in `status` per site name (sites with none left out)."""
    n = func.sum(TaskCount.n)
    return (
        select(Site.name, n)
        .join(Site, Site.id == TaskCount.site_id)
        .where(TaskCount.status == status)
        .group_by(Site.name)
        .having(n != 0)
    )


async def compact_task_counts(db: Database) -> None:
    """Fold the deltas of every counter table (`FOLDED`) into one row per key (dropping
    keys that sum to zero, such as a deleted site's); totals read the same before and
    after."""
    if not db.is_sqlite:
        async with db.engine.begin() as conn:
            for table, key in FOLDED:
                await conn.execute(text(_compact_postgres(table, key)))
        return
    async with db.session() as session:
        # The write lock first: no writer adds deltas between the read and the delete.
        await session.execute(text("BEGIN IMMEDIATE"))
        for table, key in FOLDED:
            last = (await session.execute(text(f"SELECT max(id) FROM {table}"))).scalar_one()
            if last is None:
                continue
            upto: BindParameter[int] = bindparam("last", last)
            unsettled = f"SELECT {key} FROM {table} WHERE id <= :last GROUP BY {key} {_UNSETTLED}"
            await session.execute(
                text(
                    f"INSERT INTO {table} ({key}, n) SELECT {key}, SUM(n) FROM {table}"
                    f" WHERE id <= :last GROUP BY {key} {_UNSETTLED} AND SUM(n) <> 0"
                ).bindparams(upto)
            )
            # The sums just written have ids past `last`: the same keys as above.
            await session.execute(
                text(
                    f"DELETE FROM {table} WHERE id <= :last AND ({key}) IN ({unsettled})"
                ).bindparams(upto)
            )
