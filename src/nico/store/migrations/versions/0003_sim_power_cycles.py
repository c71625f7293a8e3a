"""simulator: count the power cycles a simulated BMC really carried out

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

A restart or reset is verified by a marker that moves only when the tray really cycles
(docs/engine.md, "Verified outcomes"). `power_ops` counts every accepted command, also
one an injected `power_stuck` fault swallows, so it cannot tell; `power_cycles` can.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sim_tray_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("power_cycles", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("sim_tray_state", schema=None) as batch_op:
        batch_op.drop_column("power_cycles")
