"""task_rack_counts, task_tray_counts: exact per-rack and per-tray totals, kept by triggers

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

`GET /rack/{id}/task` and `GET /tray/{id}/task` counted the rack's tasks or the tray's
links for X-Pagination on every request: at 100k site tasks a tray's 1,000 links cost
the tray list 44% of its throughput. Triggers now write signed deltas into
`task_rack_counts` (from `tasks`) and `task_tray_counts` (from `task_trays`, and from
`tasks` when a task's status moves its links) in the writer's transaction, as 0005 does
for the site's totals; a BEFORE DELETE trigger on `tasks` deletes a task's links while
the task still exists, so their deltas can read its status. The sweep folds them.
Existing tasks and links are counted once here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of nico.store.scope_counts' trigger SQL as of this revision.
SQLITE_TRIGGERS: tuple[str, ...] = (
    """CREATE TRIGGER tasks_rack_count_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
    VALUES (NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1);
END""",
    """CREATE TRIGGER tasks_rack_count_update
AFTER UPDATE OF site_id, rack_id, status, operation_type ON tasks
WHEN OLD.site_id IS NOT NEW.site_id OR OLD.rack_id IS NOT NEW.rack_id
    OR OLD.status IS NOT NEW.status OR OLD.operation_type IS NOT NEW.operation_type
BEGIN
    INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
    VALUES (OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1),
           (NEW.site_id, NEW.rack_id, NEW.status, NEW.operation_type, 1);
END""",
    """CREATE TRIGGER tasks_rack_count_delete AFTER DELETE ON tasks BEGIN
    INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
    VALUES (OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1);
END""",
    """CREATE TRIGGER tasks_tray_count_update AFTER UPDATE OF status, operation_type ON tasks
WHEN OLD.status IS NOT NEW.status OR OLD.operation_type IS NOT NEW.operation_type
BEGIN
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT site_id, tray_id, OLD.status, OLD.operation_type, -1
    FROM task_trays WHERE task_id = OLD.id;
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT site_id, tray_id, NEW.status, NEW.operation_type, 1
    FROM task_trays WHERE task_id = NEW.id;
END""",
    """CREATE TRIGGER tasks_drop_links BEFORE DELETE ON tasks BEGIN
    DELETE FROM task_trays WHERE task_id = OLD.id;
END""",
    """CREATE TRIGGER task_trays_count_insert AFTER INSERT ON task_trays BEGIN
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT NEW.site_id, NEW.tray_id, status, operation_type, 1
    FROM tasks WHERE id = NEW.task_id;
END""",
    """CREATE TRIGGER task_trays_count_delete AFTER DELETE ON task_trays BEGIN
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT OLD.site_id, OLD.tray_id, status, operation_type, -1
    FROM tasks WHERE id = OLD.task_id;
END""",
)
POSTGRES_TRIGGERS: tuple[str, ...] = (
    """CREATE FUNCTION nico_task_rack_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
        VALUES (OLD.site_id, OLD.rack_id, OLD.status, OLD.operation_type, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)
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
    """CREATE FUNCTION nico_task_tray_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT site_id, tray_id, OLD.status, OLD.operation_type, -1
    FROM task_trays WHERE task_id = OLD.id;
    INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT site_id, tray_id, NEW.status, NEW.operation_type, 1
    FROM task_trays WHERE task_id = NEW.id;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_tray_count_update AFTER UPDATE OF status, operation_type ON tasks
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
    OR OLD.operation_type IS DISTINCT FROM NEW.operation_type)
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
    FROM tasks WHERE id = NEW.task_id;
    ELSE
        INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)
    SELECT OLD.site_id, OLD.tray_id, status, operation_type, -1
    FROM tasks WHERE id = OLD.task_id;
    END IF;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER task_trays_count_insert_delete AFTER INSERT OR DELETE ON task_trays
FOR EACH ROW EXECUTE FUNCTION nico_task_tray_counts_link()""",
)
_SQLITE_TRIGGER_NAMES = (
    "tasks_rack_count_insert",
    "tasks_rack_count_update",
    "tasks_rack_count_delete",
    "tasks_tray_count_update",
    "tasks_drop_links",
    "task_trays_count_insert",
    "task_trays_count_delete",
)
_POSTGRES_TRIGGERS_ON = (
    ("tasks_rack_count_insert_delete", "tasks"),
    ("tasks_rack_count_update", "tasks"),
    ("tasks_tray_count_update", "tasks"),
    ("tasks_drop_links", "tasks"),
    ("task_trays_count_insert_delete", "task_trays"),
)
_POSTGRES_FUNCTIONS = (
    "nico_task_rack_counts",
    "nico_task_tray_counts_move",
    "nico_task_drop_links",
    "nico_task_tray_counts_link",
)


def _counter_table(name: str, scope: str) -> None:
    op.create_table(
        name,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column(scope, sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("operation_type", sa.String(length=32), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(f"ix_{name}_key", name, ["site_id", scope, "status", "operation_type", "n"])


def upgrade() -> None:
    _counter_table("task_rack_counts", "rack_id")
    _counter_table("task_tray_counts", "tray_id")
    # Triggers first, then the backfill: on PostgreSQL CREATE TRIGGER locks out writes to
    # tasks and task_trays until this migration commits, so a task written meanwhile (an
    # older worker still running) is either counted here or waits for the triggers.
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_TRIGGERS if sqlite else POSTGRES_TRIGGERS:
        op.execute(statement)
    op.execute(
        "INSERT INTO task_rack_counts (site_id, rack_id, status, operation_type, n)"
        " SELECT site_id, rack_id, status, operation_type, COUNT(*) FROM tasks"
        " GROUP BY site_id, rack_id, status, operation_type"
    )
    op.execute(
        "INSERT INTO task_tray_counts (site_id, tray_id, status, operation_type, n)"
        " SELECT l.site_id, l.tray_id, t.status, t.operation_type, COUNT(*)"
        " FROM task_trays l JOIN tasks t ON t.id = l.task_id"
        " GROUP BY l.site_id, l.tray_id, t.status, t.operation_type"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name, table in _POSTGRES_TRIGGERS_ON:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in _POSTGRES_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    for name in ("task_tray_counts", "task_rack_counts"):
        op.drop_index(f"ix_{name}_key", table_name=name)
        op.drop_table(name)
