"""task_trays.finished_status: a tray's tasks in one finished status are one index range

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

`GET /task?trayId=…&status=Failed` had no index holding both (a link's task changes
status), so it cost the tray's tasks or that status's, whichever the planner found fewer.
Each link now carries its task's status once finished (it never changes after that):
written with new links, kept by a trigger on `tasks` in the transition's transaction,
backfilled here; `ix_task_trays_tray_site_finished` serves the filter and the order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of nico.store.task_links' SQL as of this revision.
FINISHED_SQL = "('Succeeded', 'Failed', 'Terminated')"
_LINK_STATUS = (
    f"UPDATE task_trays SET finished_status = CASE WHEN NEW.status IN {FINISHED_SQL}"
    " THEN NEW.status END WHERE task_id = NEW.id"
)
SQLITE_LINK_TRIGGERS: tuple[str, ...] = (
    f"""CREATE TRIGGER tasks_link_finished AFTER UPDATE OF status ON tasks
WHEN OLD.status IS NOT NEW.status
    AND (NEW.status IN {FINISHED_SQL} OR OLD.status IN {FINISHED_SQL})
BEGIN
    {_LINK_STATUS};
END""",
)
POSTGRES_LINK_TRIGGERS: tuple[str, ...] = (
    f"""CREATE FUNCTION nico_task_link_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_LINK_STATUS};
    RETURN NULL;
END $$""",
    f"""CREATE TRIGGER tasks_link_finished AFTER UPDATE OF status ON tasks FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
    AND (NEW.status IN {FINISHED_SQL} OR OLD.status IN {FINISHED_SQL}))
EXECUTE FUNCTION nico_task_link_finished()""",
)


def upgrade() -> None:
    with op.batch_alter_table("task_trays", schema=None) as batch_op:
        batch_op.add_column(sa.Column("finished_status", sa.String(length=16), nullable=True))
    # Trigger first, then the backfill: on PostgreSQL CREATE TRIGGER locks out status
    # changes until this migration commits, so a task finishing meanwhile (an older worker
    # still running) is either seen by the backfill or waits for the trigger.
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_LINK_TRIGGERS if sqlite else POSTGRES_LINK_TRIGGERS:
        op.execute(statement)
    op.execute(
        "UPDATE task_trays SET finished_status = (SELECT tasks.status FROM tasks"
        f" WHERE tasks.id = task_trays.task_id AND tasks.status IN {FINISHED_SQL})"
    )
    op.create_index(
        "ix_task_trays_tray_site_finished",
        "task_trays",
        ["tray_id", "site_id", "finished_status", "created", "task_id"],
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS tasks_link_finished")
    else:
        op.execute("DROP TRIGGER IF EXISTS tasks_link_finished ON tasks")
        op.execute("DROP FUNCTION IF EXISTS nico_task_link_finished()")
    op.drop_index("ix_task_trays_tray_site_finished", table_name="task_trays")
    with op.batch_alter_table("task_trays", schema=None) as batch_op:
        batch_op.drop_column("finished_status")
