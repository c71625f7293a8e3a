"""key retention indexes: the oldest idempotency keys and ledger entries in order

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

The worker's sweep prunes idempotency keys past their replay window and ledger entries of
tasks finished long ago, oldest first, a bounded batch at a time; without an index on
`created` every pass would read the whole table to find them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_idempotency_keys_created_id", "idempotency_keys", ["created", "id"])
    op.create_index("ix_operation_ledger_created_key", "operation_ledger", ["created", "key"])


def downgrade() -> None:
    op.drop_index("ix_operation_ledger_created_key", table_name="operation_ledger")
    op.drop_index("ix_idempotency_keys_created_id", table_name="idempotency_keys")
