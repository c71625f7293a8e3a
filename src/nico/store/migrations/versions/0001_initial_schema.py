"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("task_ids", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org", "key", name="uq_idempotency_org_key"),
    )
    op.create_table(
        "operation_ledger",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("tray_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org"),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("flow_enabled", sa.Boolean(), nullable=False),
        sa.Column("bmc_ca_bundle", sa.Text(), nullable=True),
        sa.Column("bmc_verify_tls", sa.Boolean(), nullable=True),
        sa.Column("firmware_catalog", sa.JSON(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["providers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider_id", "name", name="uq_sites_provider_name"),
    )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sites_provider_id"), ["provider_id"], unique=False)

    op.create_table(
        "operation_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("operation_type", sa.String(length=32), nullable=False),
        sa.Column("operation_code", sa.String(length=32), nullable=False),
        sa.Column("rule_definition", sa.JSON(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("operation_rules", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rules_site_op", ["site_id", "operation_type", "operation_code"], unique=False
        )
        batch_op.create_index(
            "uq_rules_one_default",
            ["site_id", "operation_type", "operation_code"],
            unique=True,
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        )

    op.create_table(
        "racks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("manufacturer", sa.String(length=256), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("serial_number", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("location", sa.JSON(), nullable=True),
        sa.Column("backend", sa.String(length=32), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "name", name="uq_racks_site_name"),
    )
    with op.batch_alter_table("racks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_racks_site_id"), ["site_id"], unique=False)

    op.create_table(
        "sim_faults",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("rack_id", sa.Uuid(), nullable=True),
        sa.Column("tray_id", sa.Uuid(), nullable=True),
        sa.Column("component_type", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("slow_seconds", sa.Float(), nullable=True),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sim_faults", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sim_faults_site_id"), ["site_id"], unique=False)

    op.create_table(
        "rack_rule_associations",
        sa.Column("rack_id", sa.Uuid(), nullable=False),
        sa.Column("operation_type", sa.String(length=32), nullable=False),
        sa.Column("operation_code", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rack_id"], ["racks.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rule_id"], ["operation_rules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("rack_id", "operation_type", "operation_code"),
    )
    with op.batch_alter_table("rack_rule_associations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rack_rule_associations_rule_id"), ["rule_id"], unique=False
        )

    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("rack_id", sa.Uuid(), nullable=False),
        sa.Column("operation_type", sa.String(length=32), nullable=False),
        sa.Column("operation_code", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("information", sa.JSON(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("pinned_rule_id", sa.Uuid(), nullable=True),
        sa.Column("rule_id", sa.Uuid(), nullable=True),
        sa.Column("rule_source", sa.String(length=16), nullable=True),
        sa.Column("rule_definition", sa.JSON(), nullable=True),
        sa.Column("conflict_strategy", sa.String(length=8), nullable=False),
        sa.Column("queue_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("workflow_id", sa.String(length=64), nullable=True),
        sa.Column("started", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["operation_rules.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_rack_status", ["rack_id", "status"], unique=False)
        batch_op.create_index("ix_tasks_site_created", ["site_id", "created"], unique=False)

    op.create_table(
        "trays",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rack_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("component_id", sa.String(length=256), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("manufacturer", sa.String(length=256), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("serial_number", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("firmware_version", sa.String(length=128), nullable=False),
        sa.Column("power_state", sa.String(length=16), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("tray_idx", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rack_id"], ["racks.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("manufacturer", "serial_number", name="uq_trays_manufacturer_serial"),
    )
    with op.batch_alter_table("trays", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trays_rack_id"), ["rack_id"], unique=False)
        batch_op.create_index("ix_trays_site_type", ["site_id", "type"], unique=False)

    op.create_table(
        "bmcs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tray_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("mac_address", sa.String(length=32), nullable=True),
        sa.Column("ip_address", sa.String(length=256), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("resource_id", sa.String(length=256), nullable=True),
        sa.Column("username", sa.String(length=256), nullable=True),
        sa.Column("password_encrypted", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tray_id"], ["trays.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mac_address"),
    )
    with op.batch_alter_table("bmcs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bmcs_tray_id"), ["tray_id"], unique=False)

    op.create_table(
        "sim_tray_state",
        sa.Column("tray_id", sa.Uuid(), nullable=False),
        sa.Column("power_on", sa.Boolean(), nullable=False),
        sa.Column("power_target", sa.Boolean(), nullable=True),
        sa.Column("power_ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("firmware_version", sa.String(length=128), nullable=False),
        sa.Column("firmware_job_id", sa.String(length=128), nullable=True),
        sa.Column("firmware_target", sa.String(length=128), nullable=True),
        sa.Column("firmware_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("firmware_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("firmware_failed", sa.Boolean(), nullable=False),
        sa.Column("bring_up_open", sa.Boolean(), nullable=False),
        sa.Column("expectation_injected", sa.Boolean(), nullable=False),
        sa.Column("power_ops", sa.Integer(), nullable=False),
        sa.Column("power_op_key", sa.String(length=512), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tray_id"], ["trays.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tray_id"),
    )
    op.create_table(
        "task_trays",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("tray_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "tray_id"),
    )
    with op.batch_alter_table("task_trays", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_trays_tray_id"), ["tray_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("task_trays", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_trays_tray_id"))

    op.drop_table("task_trays")
    op.drop_table("sim_tray_state")
    with op.batch_alter_table("bmcs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bmcs_tray_id"))

    op.drop_table("bmcs")
    with op.batch_alter_table("trays", schema=None) as batch_op:
        batch_op.drop_index("ix_trays_site_type")
        batch_op.drop_index(batch_op.f("ix_trays_rack_id"))

    op.drop_table("trays")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_site_created")
        batch_op.drop_index("ix_tasks_rack_status")

    op.drop_table("tasks")
    with op.batch_alter_table("rack_rule_associations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rack_rule_associations_rule_id"))

    op.drop_table("rack_rule_associations")
    with op.batch_alter_table("sim_faults", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sim_faults_site_id"))

    op.drop_table("sim_faults")
    with op.batch_alter_table("racks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_racks_site_id"))

    op.drop_table("racks")
    with op.batch_alter_table("operation_rules", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_rules_one_default",
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        )
        batch_op.drop_index("ix_rules_site_op")

    op.drop_table("operation_rules")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sites_provider_id"))

    op.drop_table("sites")
    op.drop_table("providers")
    op.drop_table("operation_ledger")
    op.drop_table("idempotency_keys")
