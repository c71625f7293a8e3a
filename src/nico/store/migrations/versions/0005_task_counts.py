"""task_counts: exact per-site totals by status and operation type, kept by triggers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

`GET /task`'s total (X-Pagination) and /metrics counted the site's tasks on every request,
a walk of the whole history. Triggers on `tasks` now write signed deltas into
`task_counts` in the writer's transaction (insert +1; a change of site, status or type -1
old, +1 new; delete -1); the sweep folds them into one row per key. Existing tasks are
counted once here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of nico.store.task_counts' trigger SQL as of this revision.
_COLUMNS = "site_id, status, operation_type, n"
SQLITE_TRIGGERS = (
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
POSTGRES_TRIGGERS = (
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


def upgrade() -> None:
    op.create_table(
        "task_counts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("operation_type", sa.String(length=32), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_task_counts_site_status_op",
        "task_counts",
        ["site_id", "status", "operation_type", "n"],
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_TRIGGERS if sqlite else POSTGRES_TRIGGERS:
        op.execute(statement)
    op.execute(
        f"INSERT INTO task_counts ({_COLUMNS}) SELECT site_id, status, operation_type, COUNT(*)"
        " FROM tasks GROUP BY site_id, status, operation_type"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("tasks_count_insert", "tasks_count_update", "tasks_count_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS tasks_count_insert_delete ON tasks")
        op.execute("DROP TRIGGER IF EXISTS tasks_count_update ON tasks")
        op.execute("DROP FUNCTION IF EXISTS nico_task_counts()")
    op.drop_index("ix_task_counts_site_status_op", table_name="task_counts")
    op.drop_table("task_counts")
