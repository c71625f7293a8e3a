"""observed tray state, tray history, tasks.created_by

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

The schema the issue-12 pieces (state sync, power and firmware reads, history pages,
firmware compliance) build on. `tray_observations` holds what was last read from each
tray's BMC (last good power state and firmware inventory with their times, and the last
read's error); `tray_history` is the append-only log of observed changes and finished
steps, indexed for newest-first pages per tray and per rack; `tasks.created_by` records
who asked for a task. Existing rows need no backfill: a tray without an observation was
never read, and older tasks have no recorded creator.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tray_observations",
        sa.Column("tray_id", sa.Uuid(), nullable=False),
        sa.Column("power_state", sa.String(length=16), nullable=True),
        sa.Column("power_observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("power_error", sa.Text(), nullable=True),
        sa.Column("power_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("firmware_inventory", sa.JSON(), nullable=True),
        sa.Column("firmware_observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("firmware_error", sa.Text(), nullable=True),
        sa.Column("firmware_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tray_id"], ["trays.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tray_id"),
    )
    op.create_table(
        "tray_history",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("rack_id", sa.Uuid(), nullable=False),
        sa.Column("tray_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("component", sa.String(length=256), nullable=True),
        sa.Column("from_value", sa.String(length=128), nullable=True),
        sa.Column("to_value", sa.String(length=128), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tray_history", schema=None) as batch_op:
        batch_op.create_index("ix_tray_history_tray_at", ["tray_id", "at", "id"])
        batch_op.create_index("ix_tray_history_rack_at", ["rack_id", "at", "id"])
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("created_by")
    with op.batch_alter_table("tray_history", schema=None) as batch_op:
        batch_op.drop_index("ix_tray_history_rack_at")
        batch_op.drop_index("ix_tray_history_tray_at")
    op.drop_table("tray_history")
    op.drop_table("tray_observations")
