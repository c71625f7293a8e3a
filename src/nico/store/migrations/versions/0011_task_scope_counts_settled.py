"""task_rack_counts, task_tray_counts: settled tasks only; totals count active ones live

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

0009's triggers wrote a rack delta pair and a tray delta pair per targeted tray on every
status change: a 35-tray task wrote ~180 counter rows from submission to Succeeded, all
under SQLite's single write lock. The counters now hold only settled tasks (any status
but Pending, Waiting, Running): a task's rows are written once, when it settles (or is
inserted settled), and go when it is deleted. A rack's or a tray's total adds a live
count of its active tasks, a small indexed set (`nico.store.scope_counts`).

The triggers are replaced under the same names, then the active tasks' counter rows
(every row keyed by an active status: they sum to exactly those tasks) are deleted, in
one transaction; on PostgreSQL DROP TRIGGER locks out writes to tasks and task_trays
until it commits.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_SQL = "('Pending', 'Waiting', 'Running')"

# Frozen copies of nico.store.scope_counts' trigger SQL as of this revision (0009's
# names, so its downgrade still drops them).
SQLITE_TRIGGERS: tuple[str, ...] = (
    """CREATE TRIGGER tasks_rack_count_insert AFTER INSERT ON tasks
WHEN NOT (NEW.status IN ('Pending', 'Waiting', 'Running'))
BEGIN
    INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
    SELECT NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1
    WHERE NOT (NEW.status IN ('Pending', 'Waiting', 'Running'));
END""",
    """CREATE TRIGGER tasks_rack_count_update
AFTER UPDATE OF site_id, rack_id, status, operation_type ON tasks
WHEN (OLD.site_id IS NOT NEW.site_id OR OLD.rack_id IS NOT NEW.rack_id
    OR OLD.status IS NOT NEW.status OR OLD.operation_type IS NOT NEW.operation_type)
    AND (NOT (OLD.status IN ('Pending', 'Waiting', 'Running'))
    OR NOT (NEW.status IN ('Pending', 'Waiting', 'Running')))
BEGIN
    INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
    SELECT OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1
    WHERE NOT (OLD.status IN ('Pending', 'Waiting', 'Running'));
    INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
    SELECT NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1
    WHERE NOT (NEW.status IN ('Pending', 'Waiting', 'Running'));
END""",
    """CREATE TRIGGER tasks_rack_count_delete AFTER DELETE ON tasks
WHEN NOT (OLD.status IN ('Pending', 'Waiting', 'Running'))
BEGIN
    INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
    SELECT OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1
    WHERE NOT (OLD.status IN ('Pending', 'Waiting', 'Running'));
END""",
    """CREATE TRIGGER tasks_tray_count_update AFTER UPDATE OF status, operation_type ON tasks
WHEN (OLD.status IS NOT NEW.status
    OR OLD.operation_type IS NOT NEW.operation_type)
    AND (NOT (OLD.status IN ('Pending', 'Waiting', 'Running'))
    OR NOT (NEW.status IN ('Pending', 'Waiting', 'Running')))
BEGIN
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT site_id, tray_id, OLD.status, OLD.operation_type, -1
    FROM task_trays WHERE task_id = OLD.id
    AND NOT (OLD.status IN ('Pending', 'Waiting', 'Running'));
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT site_id, tray_id, NEW.status, NEW.operation_type, 1
    FROM task_trays WHERE task_id = NEW.id
    AND NOT (NEW.status IN ('Pending', 'Waiting', 'Running'));
END""",
    """CREATE TRIGGER tasks_drop_links BEFORE DELETE ON tasks BEGIN
    DELETE FROM task_trays WHERE task_id = OLD.id;
END""",
    """CREATE TRIGGER task_trays_count_insert AFTER INSERT ON task_trays BEGIN
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT NEW.site_id, NEW.tray_id, status, operation_type, 1
    FROM tasks WHERE id = NEW.task_id
    AND NOT (tasks.status IN ('Pending', 'Waiting', 'Running'));
END""",
    """CREATE TRIGGER task_trays_count_delete AFTER DELETE ON task_trays BEGIN
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT OLD.site_id, OLD.tray_id, status, operation_type, -1
    FROM tasks WHERE id = OLD.task_id
    AND NOT (tasks.status IN ('Pending', 'Waiting', 'Running'));
END""",
)

POSTGRES_TRIGGERS: tuple[str, ...] = (
    """CREATE FUNCTION nico_task_rack_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF NOT (OLD.status IN ('Pending', 'Waiting', 'Running')) THEN
            INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
            VALUES (OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF NOT (NEW.status IN ('Pending', 'Waiting', 'Running')) THEN
            INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
            VALUES (NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1);
        END IF;
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_rack_count_insert_delete AFTER INSERT OR DELETE ON tasks
FOR EACH ROW EXECUTE FUNCTION nico_task_rack_counts()""",
    """CREATE TRIGGER tasks_rack_count_update
AFTER UPDATE OF site_id, rack_id, status, operation_type ON tasks FOR EACH ROW
WHEN ((OLD.site_id IS DISTINCT FROM NEW.site_id
    OR OLD.rack_id IS DISTINCT FROM NEW.rack_id OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.operation_type IS DISTINCT FROM NEW.operation_type)
    AND (NOT (OLD.status IN ('Pending', 'Waiting', 'Running'))
    OR NOT (NEW.status IN ('Pending', 'Waiting', 'Running'))))
EXECUTE FUNCTION nico_task_rack_counts()""",
    """CREATE FUNCTION nico_task_tray_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT site_id, tray_id, OLD.status, OLD.operation_type, -1
    FROM task_trays WHERE task_id = OLD.id
    AND NOT (OLD.status IN ('Pending', 'Waiting', 'Running'));
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT site_id, tray_id, NEW.status, NEW.operation_type, 1
    FROM task_trays WHERE task_id = NEW.id
    AND NOT (NEW.status IN ('Pending', 'Waiting', 'Running'));
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_tray_count_update AFTER UPDATE OF status, operation_type ON tasks
FOR EACH ROW
WHEN ((OLD.status IS DISTINCT FROM NEW.status
    OR OLD.operation_type IS DISTINCT FROM NEW.operation_type)
    AND (NOT (OLD.status IN ('Pending', 'Waiting', 'Running'))
    OR NOT (NEW.status IN ('Pending', 'Waiting', 'Running'))))
EXECUTE FUNCTION nico_task_tray_counts_move()""",
    """CREATE FUNCTION nico_task_drop_links() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_trays WHERE task_id = OLD.id;
    RETURN OLD;
END $$""",
    """CREATE TRIGGER tasks_drop_links BEFORE DELETE ON tasks
FOR EACH ROW EXECUTE FUNCTION nico_task_drop_links()""",
    """CREATE FUNCTION nico_task_tray_counts_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT NEW.site_id, NEW.tray_id, status, operation_type, 1
    FROM tasks WHERE id = NEW.task_id
    AND NOT (tasks.status IN ('Pending', 'Waiting', 'Running'));
    ELSE
        INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT OLD.site_id, OLD.tray_id, status, operation_type, -1
    FROM tasks WHERE id = OLD.task_id
    AND NOT (tasks.status IN ('Pending', 'Waiting', 'Running'));
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER task_trays_count_insert_delete AFTER INSERT OR DELETE ON task_trays
FOR EACH ROW EXECUTE FUNCTION nico_task_tray_counts_link()""",
)


def _revision_0009() -> ModuleType:
    """0009's module: its trigger SQL and names (the same names as here)."""
    path = Path(__file__).with_name("0009_task_rack_tray_counts.py")
    spec = importlib.util.spec_from_file_location("nico_migration_0009", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace_triggers(statements: Sequence[str]) -> None:
    old = _revision_0009()
    if op.get_bind().dialect.name == "sqlite":
        for name in old._SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name, table in old._POSTGRES_TRIGGERS_ON:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in old._POSTGRES_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _replace_triggers(SQLITE_TRIGGERS if sqlite else POSTGRES_TRIGGERS)
    if not sqlite:
        # An older worker's sweep still running folds counter rows (DELETE, then INSERT
        # their sum): one in flight when the DELETE below starts would commit a sum of
        # active rows the DELETE cannot see, left over for good. Wait for it, and keep
        # new ones out until this commits (after the triggers: tasks first, as writers).
        op.execute("LOCK TABLE task_rack_counts, task_tray_counts IN SHARE ROW EXCLUSIVE MODE")
    # Rows keyed by an active status count exactly the active tasks (their deltas, folded
    # or not, sum to them); totals now count those live.
    for table in ("task_rack_counts", "task_tray_counts"):
        op.execute(f"DELETE FROM {table} WHERE status IN {ACTIVE_SQL}")


def downgrade() -> None:
    old = _revision_0009()
    sqlite = op.get_bind().dialect.name == "sqlite"
    _replace_triggers(old.SQLITE_TRIGGERS if sqlite else old.POSTGRES_TRIGGERS)
    op.execute(
        "INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)"
        " SELECT site_id, rack_id, status, operation_type, COUNT(*) FROM tasks"
        f" WHERE status IN {ACTIVE_SQL} GROUP BY site_id, rack_id, status, operation_type"
    )
    op.execute(
        "INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)"
        " SELECT l.site_id, l.tray_id, t.status, t.operation_type, COUNT(*)"
        f" FROM task_trays l JOIN tasks t ON t.id = l.task_id WHERE t.status IN {ACTIVE_SQL}"
        " GROUP BY l.site_id, l.tray_id, t.status, t.operation_type"
    )
