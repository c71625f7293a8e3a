"""Request and response bodies of the simulator fault-drill endpoints (our addition).

On the wire a fault is spelled as operators say it (`power-fails`, `slow:5s`); the store
keeps `nico.store.simulator.FaultKind` values. `expiry` is a Go duration from now or an
RFC 3339 time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import Field, StrictInt, WithJsonSchema, field_validator

from nico.domain import OPERABLE_COMPONENT_TYPES, ComponentType
from nico.rules.durations import DurationError, format_seconds, parse_duration
from nico.schemas.common import RequestModel, ResponseModel, UtcTimestamp
from nico.store.models import utcnow
from nico.store.simulator import FaultKind

SLOW_PREFIX = "slow:"
MAX_SLOW_SECONDS = 3600.0
MAX_COUNT = 1_000_000
MAX_TRAYS = 1024
MAX_EXPIRY = timedelta(days=365)
IN_THE_FUTURE = "must be in the future"
WITHIN_MAX_EXPIRY = "must be at most 8760h (one year) from now"

# Wire spelling -> stored kind (`slow` takes a duration: `slow:5s`).
WIRE_KINDS: dict[str, FaultKind] = {
    "unreachable": FaultKind.UNREACHABLE,
    "power-fails": FaultKind.POWER_FAIL,
    "power-hangs": FaultKind.POWER_STUCK,
    "firmware-fails": FaultKind.FIRMWARE_FAIL,
    "firmware-hangs": FaultKind.FIRMWARE_HANG,
}
_WIRE_NAMES = {kind: name for name, kind in WIRE_KINDS.items()}
FAULT_CHOICES = ", ".join([*WIRE_KINDS, "slow:<duration>"])
OPERABLE_VALUES = [t.value for t in OPERABLE_COMPONENT_TYPES]
OPERABLE_NAMES = ", ".join(OPERABLE_VALUES)


@dataclass(frozen=True)
class FaultSpec:
    """A parsed `fault` value: the stored kind and, for `slow`, the extra seconds."""

    kind: FaultKind
    slow_seconds: float | None = None


def parse_fault(value: str) -> FaultSpec:
    """`power-fails` -> FaultSpec(POWER_FAIL); `slow:5s` -> FaultSpec(SLOW, 5.0)."""
    text = value.strip().lower()
    if text in WIRE_KINDS:
        return FaultSpec(WIRE_KINDS[text])
    if text.startswith(SLOW_PREFIX):
        try:
            seconds = parse_duration(text[len(SLOW_PREFIX) :]).seconds
        except DurationError as exc:
            raise ValueError(f"slow needs a duration such as slow:5s ({exc})") from None
        if seconds <= 0:
            raise ValueError("slow needs a duration greater than 0, such as slow:5s")
        if seconds > MAX_SLOW_SECONDS:
            raise ValueError("slow may add at most 1h per call")
        return FaultSpec(FaultKind.SLOW, seconds)
    raise ValueError(f"must be one of {FAULT_CHOICES}")


def fault_wire(kind: str, slow_seconds: float | None) -> str:
    """The wire spelling of a stored fault (`slow:5s` for slow)."""
    if kind == FaultKind.SLOW.value:
        return f"{SLOW_PREFIX}{format_seconds(slow_seconds or 0.0)}"
    return _WIRE_NAMES.get(FaultKind(kind), kind)


def parse_expiry(value: str, now: datetime) -> datetime:
    """A Go duration from `now` (`30m`) or an RFC 3339 time, in the future and at most
    MAX_EXPIRY away (a drill outlasting a year is a mistake, and an unbounded duration
    overflows the date)."""
    text = value.strip()
    try:
        seconds = parse_duration(text).seconds
    except DurationError:
        at = _rfc3339(text)
    else:
        # Checked before the addition: `99999999999h` is past what a datetime holds.
        if seconds <= 0:
            raise ValueError(IN_THE_FUTURE)
        if seconds > MAX_EXPIRY.total_seconds():
            raise ValueError(WITHIN_MAX_EXPIRY)
        at = now + timedelta(seconds=seconds)
    if at <= now:
        raise ValueError(IN_THE_FUTURE)
    if at - now > MAX_EXPIRY:
        raise ValueError(WITHIN_MAX_EXPIRY)
    return at


def _rfc3339(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            'must be a duration such as "30m" or an RFC 3339 time (YYYY-MM-DDThh:mm:ssZ)'
        ) from None
    if at.tzinfo is None:
        raise ValueError("an RFC 3339 time needs a time zone (Z or +hh:mm)")
    return at


class FaultCreateRequest(RequestModel):
    """`POST /simulator/fault`: which trays, which fault, how often, until when.

    Scope: `trayIds`, or `componentType` and/or `rackId`, or neither (every simulated
    tray of the site)."""

    site_id: str | None = Field(None, description="Site of the trays (required).")
    tray_ids: list[str] | None = Field(
        None,
        max_length=MAX_TRAYS,
        description="Trays to affect (one fault each, with its own count). Not with "
        "componentType or rackId.",
    )
    rack_id: str | None = Field(None, description="Only trays of this rack.")
    # The schema lists only the types a fault can target, not every inventory type.
    component_type: Annotated[
        ComponentType | None,
        WithJsonSchema({"anyOf": [{"type": "string", "enum": OPERABLE_VALUES}, {"type": "null"}]}),
    ] = Field(None, description=f"Only trays of this type: {OPERABLE_NAMES} (case-insensitive).")
    fault: str = Field(
        description="unreachable (every BMC call fails), power-fails (power commands are "
        "rejected), power-hangs (accepted, the state never changes), firmware-fails (the "
        "update ends Failed), firmware-hangs (the update never finishes), slow:<duration> "
        "(every call takes that much longer, e.g. slow:5s)."
    )
    count: StrictInt | None = Field(
        None,
        ge=1,
        le=MAX_COUNT,
        description="How many times the fault fires (unreachable and slow: calls; the others: "
        "commands). Omitted: until cleared or expired.",
    )
    expiry: str | None = Field(
        None,
        description='When the fault stops: a Go duration from now ("30m") or an RFC 3339 '
        "time, at most 8760h (one year) ahead. Omitted: until cleared or spent.",
    )

    @field_validator("tray_ids")
    @classmethod
    def _trays(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("must not be empty; omit it to target by componentType or rackId")
        return value

    @field_validator("component_type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            parsed = ComponentType.parse(value)
        except (ValueError, TypeError):
            parsed = None
        if parsed not in OPERABLE_COMPONENT_TYPES:
            raise ValueError(f"must be one of {OPERABLE_NAMES}")
        return parsed

    @field_validator("fault")
    @classmethod
    def _fault(cls, value: str) -> str:
        parse_fault(value)
        return value

    @field_validator("expiry")
    @classmethod
    def _expiry(cls, value: str | None) -> str | None:
        if value is not None:
            parse_expiry(value, utcnow())
        return value

    def fault_spec(self) -> FaultSpec:
        return parse_fault(self.fault)

    def expires_at(self, now: datetime) -> datetime | None:
        return None if self.expiry is None else parse_expiry(self.expiry, now)

    def scope_errors(self) -> list[tuple[str, str]]:
        """Cross-field problems: trays are named either by id or by type/rack."""
        if self.tray_ids is None:
            return []
        return [
            (name, "cannot be combined with trayIds")
            for name, given in (("componentType", self.component_type), ("rackId", self.rack_id))
            if given is not None
        ]


class SimulatorFault(ResponseModel):
    """An injected fault as the API shows it."""

    id: uuid.UUID
    site_id: uuid.UUID
    rack_id: uuid.UUID | None = Field(description="Only trays of this rack; null: every rack.")
    tray_id: uuid.UUID | None = Field(description="Only this tray; null: see componentType.")
    tray_name: str | None = Field(description="Name of `trayId`'s tray, if it still exists.")
    component_type: str | None = Field(description="Only trays of this type; null: every type.")
    fault: str = Field(description="As sent: unreachable, power-fails, ..., slow:<duration>.")
    remaining: int | None = Field(description="Firings left; null: unlimited.")
    expires: UtcTimestamp | None = Field(description="When it stops; null: never.")
    created: UtcTimestamp


class FaultsCleared(ResponseModel):
    """`DELETE /simulator/fault`: how many faults were cleared."""

    deleted: int
