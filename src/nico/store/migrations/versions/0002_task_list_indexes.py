"""task list indexes: every list filter ordered by (created, id); tray links carry site/created

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Task lists walked every task of the site (then sorted) to answer one page, so their cost
grew with the site's history. Each filter now has an index ending in the list's order,
the not-finished tasks have a small partial index of their own, and `task_trays` carries
the task's site and creation time so a tray's list is one index range. Existing links are
backfilled from their tasks.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of models.ACTIVE_TASK_SQL as of this revision.
ACTIVE_TASK_SQL = "status IN ('Pending', 'Waiting', 'Running')"


def upgrade() -> None:
    with op.batch_alter_table("task_trays", schema=None) as batch_op:
        batch_op.add_column(sa.Column("site_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("created", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE task_trays SET"
        " site_id = (SELECT tasks.site_id FROM tasks WHERE tasks.id = task_trays.task_id),"
        " created = (SELECT tasks.created FROM tasks WHERE tasks.id = task_trays.task_id)"
    )
    with op.batch_alter_table("task_trays", schema=None) as batch_op:
        batch_op.alter_column("site_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.alter_column("created", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.drop_index("ix_task_trays_tray_id")
        batch_op.create_index(
            "ix_task_trays_tray_site_created", ["tray_id", "site_id", "created", "task_id"]
        )

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_site_created")
        batch_op.create_index("ix_tasks_site_created_id", ["site_id", "created", "id"])
        batch_op.create_index("ix_tasks_site_rack_created", ["site_id", "rack_id", "created", "id"])
        batch_op.create_index(
            "ix_tasks_site_status_created", ["site_id", "status", "created", "id"]
        )
        batch_op.create_index(
            "ix_tasks_site_op_created", ["site_id", "operation_type", "created", "id"]
        )
        batch_op.create_index(
            "ix_tasks_site_active",
            ["site_id", "created", "id"],
            sqlite_where=sa.text(ACTIVE_TASK_SQL),
            postgresql_where=sa.text(ACTIVE_TASK_SQL),
        )
        batch_op.create_index(
            "ix_tasks_site_rack_active",
            ["site_id", "rack_id", "created", "id"],
            sqlite_where=sa.text(ACTIVE_TASK_SQL),
            postgresql_where=sa.text(ACTIVE_TASK_SQL),
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_site_rack_active")
        batch_op.drop_index("ix_tasks_site_active")
        batch_op.drop_index("ix_tasks_site_op_created")
        batch_op.drop_index("ix_tasks_site_status_created")
        batch_op.drop_index("ix_tasks_site_rack_created")
        batch_op.drop_index("ix_tasks_site_created_id")
        batch_op.create_index("ix_tasks_site_created", ["site_id", "created"])
    with op.batch_alter_table("task_trays", schema=None) as batch_op:
        batch_op.drop_index("ix_task_trays_tray_site_created")
        batch_op.create_index("ix_task_trays_tray_id", ["tray_id"])
        batch_op.drop_column("created")
        batch_op.drop_column("site_id")
