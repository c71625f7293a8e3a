"""Firmware read models (our addition; upstream has no firmware read): what each tray
runs as last observed, the site catalog's target and compliance (docs/firmware.md).
Named like the power reads (`nico.schemas.power`): a rack's trays are its `components`."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from nico.schemas.common import ResponseModel, UtcTimestamp

ComplianceValue = Literal["current", "outdated", "unknown"]


class FirmwareComponentStatus(ResponseModel):
    """One entry of the tray's observed firmware inventory (BMC, BIOS, CPLD, NIC, ...)."""

    name: str = Field(description="Component name as the BMC lists it.")
    id: str | None = Field(description="The BMC's id of the component, if it gives one.")
    version: str = Field(description="Running version, as last read.")
    target_version: str | None = Field(
        description="The catalog's target when this component reports the tray's main "
        "version (the catalog versions the tray's bundle); null otherwise."
    )
    compliance: ComplianceValue = Field(
        description="The tray's compliance for its main component; `unknown` for components "
        "the catalog has no target for."
    )


class FirmwareTask(ResponseModel):
    """A firmware task not finished yet (Pending, Waiting or Running)."""

    id: uuid.UUID
    status: str
    operation_code: str = Field(description="upgrade, downgrade or rollback.")
    version: str | None = Field(
        description="The version it installs (`Compute 2.1.0, NVLSwitch 1.4.2` when it "
        "differs per type)."
    )
    override_version_check: bool
    created: UtcTimestamp
    started: UtcTimestamp | None


class TrayFirmware(ResponseModel):
    """`GET /tray/{id}/firmware` and each tray of `GET /rack/{id}/firmware`."""

    id: uuid.UUID = Field(description="The tray's id.")
    name: str
    type: str = Field(description="Compute, NVLSwitch, PowerShelf, ...")
    rack_id: uuid.UUID
    version: str | None = Field(
        description="The tray's main firmware version (`firmwareVersion`): as last read from "
        "its BMC, or as imported when `observedAt` is null."
    )
    observed_at: UtcTimestamp | None = Field(
        description="When the tray's firmware inventory was last read from its BMC (by the "
        "state sync or a task); null: never read."
    )
    error: str | None = Field(
        description="What the BMC (or the way to it) said when the last firmware read "
        "failed; null when it answered."
    )
    error_at: UtcTimestamp | None = Field(description="When that read failed.")
    target_version: str | None = Field(
        description="The highest version the site's firmware catalog lists for the tray's "
        "type; null when it lists none."
    )
    compliance: ComplianceValue = Field(
        description="`current`: the main version is the target; `outdated`: it differs "
        "(older, newer or unlisted); `unknown`: no target for the type, or never read. "
        "Judged on the last good read; see `stale`."
    )
    stale: bool = Field(
        description="true while the last firmware read failed (`error` set): `version`, "
        "`components` and `compliance` are the last good read's, from `observedAt`, and "
        "the tray may run something else now."
    )
    components: list[FirmwareComponentStatus] = Field(
        description="The last observed inventory, every component the BMC lists; empty "
        "when none was read."
    )
    tasks: list[FirmwareTask] = Field(
        description="Firmware tasks in flight that target this tray, oldest first."
    )


class FirmwareSummary(ResponseModel):
    """How many of the rack's trays are in each compliance state."""

    total: int
    current: int
    outdated: int
    unknown: int
    stale: int = Field(
        description="Trays counted above on their last good read because their last "
        "firmware read failed (each also in current, outdated or unknown)."
    )


class RackFirmware(ResponseModel):
    """`GET /rack/{id}/firmware`."""

    id: uuid.UUID = Field(description="The rack's id.")
    name: str
    site_id: uuid.UUID
    summary: FirmwareSummary
    components: list[TrayFirmware] = Field(description="Every tray of the rack, in slot order.")
    tasks: list[FirmwareTask] = Field(
        description="Firmware tasks in flight on the rack, oldest first."
    )
