"""Tray history rows on the wire (`GET /tray/{id}/history`, `GET /rack/{id}/history`)."""

from __future__ import annotations

import uuid

from pydantic import Field

from nico.schemas.common import ResponseModel, UtcTimestamp
from nico.store.models import TrayHistory


class TrayHistoryEntry(ResponseModel):
    """One observed change of a tray's power state or firmware version (`outcome` null),
    or one finished power/firmware step of a task on the tray (`outcome` set)."""

    id: uuid.UUID
    tray_id: uuid.UUID
    rack_id: uuid.UUID
    kind: str = Field(description="power or firmware.")
    component: str | None = Field(
        None, description="Firmware component as the BMC lists it; null for power."
    )
    from_value: str | None = Field(
        None, alias="from", description="Value before (power state or version)."
    )
    to_value: str | None = Field(None, alias="to", description="Value after.")
    at: UtcTimestamp = Field(description="When it was observed, or when the step finished.")
    task_id: uuid.UUID | None = Field(None, description="The task that saw or did it.")
    created_by: str | None = Field(None, description="Who started that task (token subject).")
    outcome: str | None = Field(
        None,
        description="A step's outcome: Succeeded, Failed, Skipped (a firmware tray already "
        "at the version), NotStarted (the step stopped after another tray failed, or ran "
        "out of time before it started) or Terminated (the task was cancelled); null for "
        "an observation.",
    )
    message: str | None = Field(
        None, description="A step's operation and, when it did not succeed, why."
    )
    source: str = Field(description="sync (the periodic state sync) or task.")

    @classmethod
    def of(cls, row: TrayHistory) -> TrayHistoryEntry:
        return cls(
            id=row.id,
            tray_id=row.tray_id,
            rack_id=row.rack_id,
            kind=row.kind,
            component=row.component,
            from_value=row.from_value,
            to_value=row.to_value,
            at=row.at,
            task_id=row.task_id,
            created_by=row.created_by,
            outcome=row.outcome,
            message=row.message,
            source=row.source,
        )
