"""Request and response bodies of the power, firmware and bring-up endpoints.

Upstream's fields (`siteId`, `state`, `version`, `targets`, `filter`, `ruleId`,
`description`, firmware `overrideVersionCheck`; `overrideReadinessCheck`, and
`overrideVersionCheck` outside firmware, accepted and ignored)
plus ours: `conflictStrategy` + `queueTimeout`,
`operationCode` (picks the rule: firmware downgrade/rollback, bring-up `ingest`) and `all`
(a batch operation without a filter must say `"all": true` to act on every rack of the
site). A firmware `version` picks the image: required for downgrade and rollback, never an
image URL (the site's firmware catalog maps versions to images).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictBool, field_validator

from nico.api.tray_selector import FILTER_FIELDS, tray_selector
from nico.domain import (
    BRING_UP_CODES,
    FIRMWARE_CODES,
    OPERABLE_COMPONENT_TYPES,
    POWER_STATE_CODES,
    POWER_STATE_WORDS,
    ComponentType,
    power_state,
)
from nico.hardware.redfish.catalog import is_image_uri
from nico.rules.durations import DurationError, parse_duration
from nico.schemas.common import RequestModel, ResponseModel
from nico.store.inventory import TraySelector
from nico.tasks.conflicts import ConflictStrategy

MAX_QUEUE_TIMEOUT_SECONDS = 24 * 3600.0
MAX_DESCRIPTION = 1024

# Firmware components an update may name, per tray type (upstream's spec enum plus
# JUL's `dpu` for compute).
FIRMWARE_TARGETS: dict[ComponentType, tuple[str, ...]] = {
    ComponentType.COMPUTE: ("bmc", "bios", "dpu"),
    ComponentType.NVLSWITCH: ("bmc", "cpld", "bios", "nvos"),
    ComponentType.POWERSHELF: ("pmc", "psu"),
}
ALL_FIRMWARE_TARGETS: tuple[str, ...] = tuple(
    dict.fromkeys(t for names in FIRMWARE_TARGETS.values() for t in names)
)


def _one_of(values: tuple[str, ...]) -> str:
    return f"must be one of [{' '.join(values)}]"


def _lower_choice(value: Any, choices: tuple[str, ...]) -> Any:
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    if value is None:
        return value
    raise ValueError(_one_of(choices))


class OperationOptions(RequestModel):
    """Fields every operation request takes."""

    site_id: uuid.UUID = Field(description="ID of the Site the racks or trays belong to.")
    rule_id: uuid.UUID | None = Field(
        None,
        description="Pin an operation rule of the site (must match the operation type and "
        "code); default resolution: rack association, site default, built-in.",
    )
    conflict_strategy: Literal["reject", "queue"] | None = Field(
        None,
        description="When the rack is busy with a conflicting task: `reject` (409, default) "
        "or `queue` (wait as `Waiting`, promoted first-in first-out).",
    )
    queue_timeout: str | None = Field(
        None,
        description='How long a queued task may wait, as a Go duration ("30m"); default '
        "NICO_QUEUE_DEFAULT_TIMEOUT, at most 24h. Only with conflictStrategy=queue.",
    )
    description: str | None = Field(
        None, max_length=MAX_DESCRIPTION, description="Human-readable task description."
    )
    override_readiness_check: StrictBool | None = Field(
        None,
        description="Accepted for upstream compatibility; nico-flow has no readiness gate, "
        "so it changes nothing.",
    )
    override_version_check: StrictBool | None = Field(
        None,
        description="Accepted for upstream compatibility; only firmware requests use it.",
    )

    @field_validator("conflict_strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> Any:
        return _lower_choice(value, tuple(s.value for s in ConflictStrategy))

    @field_validator("queue_timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value).seconds
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        if seconds <= 0:
            raise ValueError("must be greater than 0")
        if seconds > MAX_QUEUE_TIMEOUT_SECONDS:
            raise ValueError("must be at most 24h")
        return value

    def strategy(self) -> ConflictStrategy:
        return ConflictStrategy(self.conflict_strategy or ConflictStrategy.REJECT.value)

    def queue_timeout_seconds(self) -> float | None:
        return None if self.queue_timeout is None else parse_duration(self.queue_timeout).seconds

    def option_errors(self) -> list[tuple[str, str]]:
        """Cross-field problems pydantic cannot name by field."""
        if self.queue_timeout is not None and self.strategy() is not ConflictStrategy.QUEUE:
            return [("queueTimeout", "requires conflictStrategy queue")]
        return []


class PowerFields(RequestModel):
    state: Literal["On", "Off", "Cycle", "ForceOff", "ForceCycle", "ACPowerCycle"] = Field(
        description="Power state to reach: On, Off, Cycle (graceful restart), ForceOff, "
        "ForceCycle (forced restart) or ACPowerCycle (the rack's power shelves cut AC and "
        "restore it: every tray behind them goes through Off and back). Any casing is "
        "accepted (upstream's older on, off, cycle, forceoff, forcecycle too); tasks "
        "record the PascalCase spelling."
    )

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("is required")
        if not isinstance(value, str):
            raise ValueError(f"must be one of [{' '.join(POWER_STATE_CODES)}]")
        return power_state(value)

    def operation_code(self) -> str:
        return POWER_STATE_CODES[self.state]

    def words(self) -> str:
        """How a default task description says the state (`force power cycle`)."""
        return POWER_STATE_WORDS[self.state]


VERSION_REQUIRED_CODES = ("downgrade", "rollback")
VERSION_NOT_URL = (
    "must be a firmware version, not an image URL; map versions to image URIs in the "
    "site's redfish.firmwareCatalog"
)


class FirmwareFields(RequestModel):
    version: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Firmware version to install (not an image URL). It must be listed in "
        "the site's redfish.firmwareCatalog for every tray type the request targets, on "
        "simulator and Redfish trays alike; otherwise 400 naming the version and the types, "
        "and nothing is started. Required for downgrade and rollback; an upgrade without "
        "it installs, per component type, the highest version the catalog lists (resolved "
        "when the request is accepted; 400 if the catalog has none).",
    )
    targets: list[str] | None = Field(
        None,
        description="Firmware components to update: Compute bmc|bios|dpu, NVLSwitch "
        "bmc|cpld|bios|nvos, PowerShelf pmc|psu. Only trays with a named component are "
        "targeted. Omitted: every component.",
    )
    operation_code: Literal["upgrade", "downgrade", "rollback"] | None = Field(
        None, description="upgrade (default), downgrade or rollback."
    )
    override_version_check: StrictBool | None = Field(
        None,
        description="true: update every targeted tray, also one whose BMC already reports "
        "the requested version (a same-version reflash). Default false: such trays are "
        "skipped and reported as skipped (not failed); the version is read from each "
        "tray's BMC when its step starts.",
    )

    @field_validator("operation_code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        return _lower_choice(value, FIRMWARE_CODES)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and is_image_uri(value):
            raise ValueError(VERSION_NOT_URL)
        return value

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must not be empty; omit it to update every component")
        out: list[str] = []
        for name in value:
            key = name.strip().lower()
            if not key:
                raise ValueError("targets must not contain empty strings")
            if key not in ALL_FIRMWARE_TARGETS:
                raise ValueError(f"unknown target {name!r}: {_one_of(ALL_FIRMWARE_TARGETS)}")
            if key in out:
                raise ValueError(f"target {key!r} is listed twice")
            out.append(key)
        return out

    def code(self) -> str:
        return self.operation_code or "upgrade"

    def version_errors(self) -> list[tuple[str, str]]:
        """Downgrade and rollback must say which version: the catalog's highest is an
        upgrade's default, never theirs."""
        if self.version is None and self.code() in VERSION_REQUIRED_CODES:
            return [("version", "is required for downgrade and rollback")]
        return []

    def target_types(self) -> set[str] | None:
        """Tray types that have at least one named target (None = every type)."""
        if self.targets is None:
            return None
        return {
            kind.value
            for kind, names in FIRMWARE_TARGETS.items()
            if any(t in names for t in self.targets)
        }

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version}
        if self.targets is not None:
            out["targets"] = list(self.targets)
        if self.override_version_check:
            # The engine's flag (nico.engine.step_runner.OVERRIDE_VERSION_CHECK).
            out["overrideVersionCheck"] = True
        return out


class BringUpFields(RequestModel):
    operation_code: Literal["bring_up", "ingest"] | None = Field(
        None, description="bring_up (default) or ingest (our addition)."
    )

    @field_validator("operation_code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        return _lower_choice(value, BRING_UP_CODES)

    def code(self) -> str:
        return self.operation_code or "bring_up"


class RackFilter(RequestModel):
    """Racks by name (OR). Naming a rack that does not exist is a 400."""

    names: list[str] | None = Field(None, description="Rack names; any of them matches.")


class TrayFilter(RequestModel):
    """Trays of the site (upstream's TrayFilter; all given fields compose with AND).

    Ids stay strings here so `selector` reports a bad one the way `GET /tray` does."""

    rack_id: str | None = Field(None, json_schema_extra={"format": "uuid"})
    rack_name: str | None = None
    type: str | None = Field(None, description="Compute, NVLSwitch or PowerShelf.")
    component_ids: list[str] | None = Field(
        None, description="External component ids; needs `type`."
    )
    ids: list[Annotated[str, Field(json_schema_extra={"format": "uuid"})]] | None = Field(
        None, description="Tray ids."
    )
    slot_id: int | None = Field(None, description="Slot; needs rackId or rackName.")

    def is_empty(self) -> bool:
        return all(
            v is None or v == []
            for v in (
                self.rack_id,
                self.rack_name,
                self.type,
                self.component_ids,
                self.ids,
                self.slot_id,
            )
        )

    def selector(self, summary: str) -> TraySelector:
        """Check upstream's TrayFilter rules (the `GET /tray` validator); 400 naming each
        offending field."""
        return tray_selector(
            rack_id=self.rack_id,
            rack_name=self.rack_name,
            type=self.type,
            component_ids=self.component_ids or [],
            ids=self.ids or [],
            slot_id=self.slot_id,
            fields=FILTER_FIELDS,
            types=OPERABLE_COMPONENT_TYPES,
            summary=summary,
        )


class BatchScope(RequestModel):
    """`all: true` is required to act on the whole site when no filter narrows it."""

    # Published so generated clients and fuzzers know a batch needs a filter or `all: true`
    # (the server also refuses an empty filter, and a filter together with `all: true`).
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["filter"]},
                {"required": ["all"], "properties": {"all": {"const": True}}},
            ]
        }
    )

    all: StrictBool | None = Field(
        None,
        description="Set true to act on every rack/tray of the site; required when no "
        "filter is given (guards against a forgotten filter powering off a whole site).",
    )


def scope_errors(filter_empty: bool, all_flag: bool | None) -> list[tuple[str, str]]:
    if filter_empty and not all_flag:
        return [("filter", 'is required; to act on the whole site set "all": true')]
    if not filter_empty and all_flag:
        return [("all", "cannot be combined with filter")]
    return []


# --- request bodies ------------------------------------------------------------------


class PowerBody(PowerFields, OperationOptions):
    """Fields of every power request."""


class FirmwareBody(FirmwareFields, OperationOptions):
    """Fields of every firmware request."""

    def option_errors(self) -> list[tuple[str, str]]:
        return super().option_errors() + self.version_errors()


class BringUpBody(BringUpFields, OperationOptions):
    """Fields of every bring-up request."""


class PowerRequest(PowerBody):
    """`PATCH /rack/{id}/power`, `PATCH /tray/{id}/power`."""


class BatchRackPowerRequest(PowerBody, BatchScope):
    """`PATCH /rack/power`."""

    filter: RackFilter | None = None


class BatchTrayPowerRequest(PowerBody, BatchScope):
    """`PATCH /tray/power`."""

    filter: TrayFilter | None = None


class FirmwareRequest(FirmwareBody):
    """`PATCH /rack/{id}/firmware`, `PATCH /tray/{id}/firmware`."""


class BatchRackFirmwareRequest(FirmwareBody, BatchScope):
    """`PATCH /rack/firmware`."""

    filter: RackFilter | None = None


class BatchTrayFirmwareRequest(FirmwareBody, BatchScope):
    """`PATCH /tray/firmware`."""

    filter: TrayFilter | None = None


class BringUpRequest(BringUpBody):
    """`POST /rack/{id}/bringup`."""


class BatchBringUpRequest(BringUpBody, BatchScope):
    """`POST /rack/bringup`."""

    filter: RackFilter | None = None


class TaskIds(ResponseModel):
    """What every operation answers: one task per rack."""

    task_ids: list[uuid.UUID]
