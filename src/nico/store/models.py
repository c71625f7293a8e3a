"""SQLAlchemy tables. One schema for SQLite and PostgreSQL; Alembic migrations mirror it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite (which stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime}


class Timestamps:
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


# --- inventory -----------------------------------------------------------------------


class Provider(Timestamps, Base):
    """An org's Infrastructure Provider (one per org)."""

    __tablename__ = "providers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)


class Site(Timestamps, Base):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("provider_id", "name", name="uq_sites_provider_name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    flow_enabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Redfish settings a site may override: CA bundle (PEM text), TLS verification
    # opt-out, and a firmware catalog mapping version -> image URI per component type.
    bmc_ca_bundle: Mapped[str | None] = mapped_column(Text, nullable=True)
    bmc_verify_tls: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    firmware_catalog: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Rack(Timestamps, Base):
    __tablename__ = "racks"
    __table_args__ = (UniqueConstraint("site_id", "name", name="uq_racks_site_name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    manufacturer: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    model: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    serial_number: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    backend: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Tray(Timestamps, Base):
    """A rack component. Serial numbers are unique per manufacturer."""

    __tablename__ = "trays"
    __table_args__ = (
        UniqueConstraint("manufacturer", "serial_number", name="uq_trays_manufacturer_serial"),
        Index("ix_trays_site_type", "site_id", "type"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    rack_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("racks.id", ondelete="CASCADE"), nullable=False, index=True
    )
    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    component_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    name: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    manufacturer: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    model: Mapped[str] = mapped_column(String(256), default="", nullable=False)
    serial_number: Mapped[str] = mapped_column(String(256), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    firmware_version: Mapped[str] = mapped_column(String(128), default="", nullable=False)
    power_state: Mapped[str] = mapped_column(String(16), default="Unknown", nullable=False)
    slot_id: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    tray_idx: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    host_id: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    backend: Mapped[str | None] = mapped_column(String(32), nullable=True)


class TrayObservation(Base):
    """What was last read from a tray's BMC (by the state sync or a task), 1:1 with the
    tray and created at its first read; a tray without a row was never read.

    Kept apart from `trays` so tray lists and the engine's tray lookups do not carry
    the firmware inventory, and so a sync pass never rewrites inventory rows. Each kind
    keeps its last good value with its time, and the error of the last read when that
    read failed (cleared by the next good one). `trays.power_state` and
    `trays.firmware_version` mirror what is shown today: the last good value, or
    `Unknown` power while the last read failed (never a stale `On`), written only by
    `nico.store.observations` in the observation's transaction, so `GET /tray` and
    `GET /tray/{id}/power` agree (docs/state.md)."""

    __tablename__ = "tray_observations"

    tray_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("trays.id", ondelete="CASCADE"), primary_key=True
    )
    # Last good power read: the state the BMC reported and when.
    power_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    power_observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The last power read failed: what the BMC (or the way to it) said, and when.
    power_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    power_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Last good firmware inventory: [{"name": ..., "version": ..., "id": ...}, ...], every
    # component the BMC lists (BMC, BIOS/UEFI, CPLD, NIC, ...), and when it was read.
    firmware_inventory: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    firmware_observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    firmware_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    firmware_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TrayHistory(Base):
    """One observed change of a tray's power state or a firmware component's version, or
    one finished power/firmware step of a task. Append-only; no foreign keys, so history
    outlives the trays and racks it names (like tasks)."""

    __tablename__ = "tray_history"
    # Newest-first pages per tray and per rack read their index in order and stop.
    __table_args__ = (
        Index("ix_tray_history_tray_at", "tray_id", "at", "id"),
        Index("ix_tray_history_rack_at", "rack_id", "at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    site_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    rack_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    tray_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    # power | firmware
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # Firmware component name as the BMC lists it; None for power (and a whole-tray step).
    component: Mapped[str | None] = mapped_column(String(256), nullable=True)
    from_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    to_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # The task's `created_by` (the token subject that asked for it).
    created_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # A task step's outcome (Succeeded, Failed, Skipped, ...); None for an observation.
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # sync | task: who saw it.
    source: Mapped[str] = mapped_column(String(8), nullable=False)


class Bmc(Base):
    """A tray's BMC. The password is stored Fernet-encrypted and never returned."""

    __tablename__ = "bmcs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tray_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("trays.id", ondelete="CASCADE"), nullable=False, index=True
    )
    type: Mapped[str] = mapped_column(String(32), default="Host", nullable=False)
    mac_address: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(256), nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resource_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    username: Mapped[str | None] = mapped_column(String(256), nullable=True)
    password_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


# --- operation rules -------------------------------------------------------------------


class OperationRule(Timestamps, Base):
    __tablename__ = "operation_rules"
    __table_args__ = (
        Index("ix_rules_site_op", "site_id", "operation_type", "operation_code"),
        # At most one default per (site, type, code), enforced by the database.
        Index(
            "uq_rules_one_default",
            "site_id",
            "operation_type",
            "operation_code",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    operation_type: Mapped[str] = mapped_column(String(32), nullable=False)
    operation_code: Mapped[str] = mapped_column(String(32), nullable=False)
    rule_definition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class RackRuleAssociation(Timestamps, Base):
    """Pins a rule to a rack for one (type, code); beats the site default at resolution."""

    __tablename__ = "rack_rule_associations"

    rack_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("racks.id", ondelete="CASCADE"), primary_key=True
    )
    operation_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    operation_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    rule_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("operation_rules.id", ondelete="CASCADE"), nullable=False, index=True
    )


# --- tasks -----------------------------------------------------------------------------

# Not finished (Pending, Waiting, Running): the predicate of the partial index that serves
# `activeOnly`. Queries repeat it verbatim (a literal, not bound values), because SQLite
# only uses a partial index whose WHERE appears word for word in the query.
ACTIVE_TASK_SQL = "status IN ('Pending', 'Waiting', 'Running')"


class Task(Timestamps, Base):
    """One operation on one rack, executed as the Temporal workflow whose id is `id`."""

    __tablename__ = "tasks"
    # Each list filter has an index ending in (created, id), the list's order, so a page
    # reads its rows in order and stops: cost follows the page, not the site's history.
    __table_args__ = (
        Index("ix_tasks_site_created_id", "site_id", "created", "id"),
        Index("ix_tasks_site_rack_created", "site_id", "rack_id", "created", "id"),
        Index("ix_tasks_site_status_created", "site_id", "status", "created", "id"),
        Index("ix_tasks_site_op_created", "site_id", "operation_type", "created", "id"),
        Index(
            "ix_tasks_site_active",
            "site_id",
            "created",
            "id",
            sqlite_where=text(ACTIVE_TASK_SQL),
            postgresql_where=text(ACTIVE_TASK_SQL),
        ),
        Index(
            "ix_tasks_site_rack_active",
            "site_id",
            "rack_id",
            "created",
            "id",
            sqlite_where=text(ACTIVE_TASK_SQL),
            postgresql_where=text(ACTIVE_TASK_SQL),
        ),
        Index("ix_tasks_rack_status", "rack_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    )
    # No FK: task history outlives the rack it ran on.
    rack_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    operation_type: Mapped[str] = mapped_column(String(32), nullable=False)
    operation_code: Mapped[str] = mapped_column(String(32), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    message: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # Operation parameters (firmware version/targets, power state asked for, ...).
    information: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    # Targeted trays by component type: {"Compute": [tray ids], ...}.
    targets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    pinned_rule_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    rule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("operation_rules.id", ondelete="SET NULL"), nullable=True
    )
    # Where the rule came from: pinned | rack | default | builtin.
    rule_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The rule definition snapshot the workflow runs (later rule edits never change it).
    rule_definition: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    conflict_strategy: Mapped[str] = mapped_column(String(8), default="reject", nullable=False)
    queue_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    workflow_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The subject of the token that asked for the task (None for tasks from before 0004).
    created_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    started: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TaskTray(Base):
    """Which trays a task targets, so 'tasks of tray X' is one indexed lookup.

    Carries copies of the task's `site_id` and `created` (both never change), so one
    index serves the tray list's filter and its newest-first order together and a page
    reads only its own rows; `add_task` writes them with the task. `finished_status` is
    the task's status once it is finished (Succeeded, Failed, Terminated: it never changes
    again), NULL before; a trigger on `tasks` (migration 0006) sets it in the same
    transaction as the task's transition, so a tray's tasks in one finished status are
    one index range too."""

    __tablename__ = "task_trays"
    __table_args__ = (
        Index("ix_task_trays_tray_site_created", "tray_id", "site_id", "created", "task_id"),
        Index(
            "ix_task_trays_tray_site_finished",
            "tray_id",
            "site_id",
            "finished_status",
            "created",
            "task_id",
        ),
    )

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    tray_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    site_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_status: Mapped[str | None] = mapped_column(String(16), nullable=True)


class TaskCount(Base):
    """Task counts by site, status and operation type, kept as signed deltas: triggers on
    `tasks` (migration 0005, `nico.store.task_counts`) add +1 for a new row or a row's new
    (site, status, type) and -1 for its old one or a deleted row, in the writer's own
    transaction, so a sum is exact whoever wrote the task and however. Rows are only ever
    inserted (no row lock two writers could wait on, or deadlock over), and the sweep
    folds them into one row per key (`compact_task_counts`), so a site's totals read a
    few dozen rows whatever its history."""

    __tablename__ = "task_counts"
    __table_args__ = (
        Index("ix_task_counts_site_status_op", "site_id", "status", "operation_type", "n"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # No FK: a site's deletion cascades to its tasks, whose triggers write its last deltas.
    site_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    operation_type: Mapped[str] = mapped_column(String(32), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)


class TaskRackCount(Base):
    """A rack's settled tasks (any status but Pending, Waiting, Running) by site, status
    and operation type, kept as signed deltas like `TaskCount`: triggers on `tasks`
    (migrations 0009, 0011, `nico.store.scope_counts`) write them in the writer's
    transaction when a task settles and the sweep folds them, so a rack list's total
    reads a few rows plus the rack's few active tasks, whatever its history."""

    __tablename__ = "task_rack_counts"
    __table_args__ = (
        Index("ix_task_rack_counts_key", "site_id", "rack_id", "status", "operation_type", "n"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    site_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    rack_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    operation_type: Mapped[str] = mapped_column(String(32), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)


class TaskTrayCount(Base):
    """A tray's settled tasks by site, status and operation type (signed deltas like
    `TaskCount`): triggers on `task_trays` count a settled task's link inserted or
    deleted, triggers on `tasks` count its links when it settles (migrations 0009, 0011,
    `nico.store.scope_counts`), so a tray list's total reads a few rows plus the tray's
    links with no finished status, not all its links."""

    __tablename__ = "task_tray_counts"
    __table_args__ = (
        Index("ix_task_tray_counts_key", "site_id", "tray_id", "status", "operation_type", "n"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    site_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    tray_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    operation_type: Mapped[str] = mapped_column(String(32), nullable=False)
    n: Mapped[int] = mapped_column(Integer, nullable=False)


class IdempotencyKey(Base):
    """A client's `Idempotency-Key` and the task ids its first request produced."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("org", "key", name="uq_idempotency_org_key"),
        # Retention walks the oldest keys in order (`nico.tasks.key_retention`).
        Index("ix_idempotency_keys_created_id", "created", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org: Mapped[str] = mapped_column(String(128), nullable=False)
    key: Mapped[str] = mapped_column(String(256), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    task_ids: Mapped[list[Any]] = mapped_column(JSON, nullable=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class OperationLedger(Base):
    """Side effects sent to hardware, keyed per task/step/tray/action, so a retried or
    replayed activity does not send a power cycle or firmware flash twice. A row with
    `accepted` unset is an intent: written before a power cycle is sent, so a retry that
    finds it knows an earlier attempt may have reached the BMC."""

    __tablename__ = "operation_ledger"
    # Retention walks the oldest entries in order (`nico.tasks.key_retention`).
    __table_args__ = (Index("ix_operation_ledger_created_key", "created", "key"),)

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    tray_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    accepted: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WorkerLease(Base):
    """A job one worker process at a time runs (the state sync): who holds it and until
    when; a holder that stops renewing loses it at `expires_at`."""

    __tablename__ = "worker_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


# --- simulator -------------------------------------------------------------------------


class SimTrayState(Base):
    """Persistent simulated hardware state of one tray; transitions are time-based so a
    restarted worker sees exactly where each tray is."""

    __tablename__ = "sim_tray_state"

    tray_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("trays.id", ondelete="CASCADE"), primary_key=True
    )
    power_on: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # A power transition in flight: target state and when it completes.
    power_target: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    power_ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    firmware_version: Mapped[str] = mapped_column(String(128), default="1.0.0", nullable=False)
    firmware_job_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    firmware_target: Mapped[str | None] = mapped_column(String(128), nullable=True)
    firmware_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    firmware_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    firmware_failed: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    bring_up_open: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    expectation_injected: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    power_ops: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # Power cycles (restarts, resets) the simulated BMC really carried out: the marker a
    # cycle is verified by (an accepted but swallowed command does not move it).
    power_cycles: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", nullable=False
    )
    # Operation key of the last accepted power command: a retried call with the same key
    # (worker crash after the BMC accepted it) is acknowledged without acting twice.
    power_op_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    updated: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class SimFault(Base):
    """An injected simulator fault (drill): what, on which trays, how many times, until when."""

    __tablename__ = "sim_faults"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # None = every rack of the site; tray faults carry their tray's rack too.
    rack_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    tray_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    component_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    slow_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    remaining: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
