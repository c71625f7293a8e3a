"""Power read wire models: `GET /tray/{id}/power` and `GET /rack/{id}/power`.

Shaped after upstream's "Get Tray power state" / "Get Rack power state": every field
is present (null when unavailable); the actual state, the desired state and the power
tasks in flight are independent sections, so a failed read hides neither.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from nico.schemas.common import ResponseModel, UtcTimestamp

SummaryState = Literal["On", "Off", "Mixed", "Unknown"]


class LastGoodPower(ResponseModel):
    state: str = Field(description="The power state the last good read returned")
    observed_at: UtcTimestamp = Field(description="When that read answered")


class ActualPower(ResponseModel):
    """What the tray's BMC last said (the state sync's or a task's read)."""

    state: str = Field(
        description="On, Off, PoweringOn, PoweringOff; Unknown when the last read failed "
        "(see `error`) or the tray was never read; Unsupported for tray types nico does "
        "not operate"
    )
    observed_at: UtcTimestamp | None = Field(
        description="When the read that produced `state` answered (or failed); null: never read"
    )
    error: str | None = Field(description="Why the last read failed; null when it worked")
    last_good: LastGoodPower | None = Field(
        description="While the last read failed: the last state read, and when"
    )


class DesiredPower(ResponseModel):
    """What the last accepted power task on the tray asked for."""

    state: Literal["On", "Off"] | None = Field(
        description="The state the tray should end in (a cycle ends On); null: no power task"
    )
    requested: str | None = Field(description="The power state as the task asked it")
    task_id: uuid.UUID | None
    task_status: str | None
    requested_at: UtcTimestamp | None = Field(description="When the task was accepted")


class PowerTask(ResponseModel):
    """A power task not finished yet (Pending, Waiting or Running)."""

    id: uuid.UUID
    status: str
    operation_code: str
    requested: str | None
    created: UtcTimestamp
    started: UtcTimestamp | None


class TrayPower(ResponseModel):
    id: uuid.UUID
    name: str
    type: str
    rack_id: uuid.UUID
    actual: ActualPower
    desired: DesiredPower
    tasks: list[PowerTask] = Field(description="Power tasks in flight that target this tray")


class ActualCoverage(ResponseModel):
    total: int
    on: int
    off: int
    transitioning: int = Field(description="PoweringOn or PoweringOff")
    unknown: int = Field(description="Last read failed, or never read")
    unsupported: int = Field(
        description="Tray types nico does not operate (not counted as missing)"
    )


class DesiredCoverage(ResponseModel):
    total: int
    on: int
    off: int
    unset: int = Field(description="Operable trays no power task asked anything of")
    unsupported: int


class ActualSummary(ResponseModel):
    state: SummaryState = Field(
        description="On or Off when every operable tray reads it; Mixed when trays read "
        "both (even if others are unknown); otherwise Unknown"
    )
    complete: bool = Field(description="Every operable tray has a settled, good read")
    coverage: ActualCoverage


class DesiredSummary(ResponseModel):
    state: SummaryState = Field(
        description="On or Off when every power task's wish agrees; Mixed when they "
        "disagree; Unknown when no tray has one (trays without one never vote)"
    )
    complete: bool = Field(description="Every operable tray has a desired state")
    coverage: DesiredCoverage


class RackPower(ResponseModel):
    id: uuid.UUID
    name: str
    site_id: uuid.UUID
    actual: ActualSummary
    desired: DesiredSummary
    components: list[TrayPower] = Field(description="Every tray of the rack, in slot order")
    tasks: list[PowerTask] = Field(description="Power tasks in flight on the rack, oldest first")
