"""The one tray-filter validator: `GET /tray` query parameters and an operation's
`filter` (upstream's T1 rules and messages; the operation body names its fields `ids`
and `componentIds`, as upstream's TrayFilter does)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from nico.domain import ComponentType
from nico.errors import ValidationFailed
from nico.ids import FieldErrors, optional_uuid
from nico.store.inventory import TraySelector

# The largest slot the tray table's integer column holds (Position.slotId's bound too).
MAX_SLOT_ID = 2**31 - 1


@dataclass(frozen=True)
class SelectorFields:
    """What a caller calls each selector field, as its errors name them."""

    rack_id: str
    rack_name: str
    type: str
    component_ids: str
    ids: str
    slot_id: str
    prefix: str = ""

    def path(self, name: str) -> str:
        return self.prefix + name


QUERY_FIELDS = SelectorFields("rackId", "rackName", "type", "componentId", "id", "slotId")
FILTER_FIELDS = SelectorFields(
    "rackId", "rackName", "type", "componentIds", "ids", "slotId", prefix="filter."
)


def tray_selector(
    *,
    rack_id: str | uuid.UUID | None,
    rack_name: str | None,
    type: str | None,
    component_ids: Sequence[str],
    ids: Sequence[str | uuid.UUID],
    slot_id: int | None,
    fields: SelectorFields,
    types: Sequence[ComponentType],
    summary: str,
) -> TraySelector:
    """Check every rule at once; one 400 (`summary`) names each offending field."""
    errors: FieldErrors = []
    f = fields
    parsed_rack = optional_uuid(rack_id, f.path(f.rack_id), errors)
    kind: ComponentType | None = None
    if type is not None:
        try:
            kind = ComponentType.parse(type)
        except ValueError:
            kind = None
        if kind not in types:
            names = " ".join(t.value for t in types)
            errors.append((f.path(f.type), f"must be one of [{names}]"))
    parsed_ids: list[uuid.UUID] = []
    for value in ids:
        parsed = optional_uuid(
            value, f.path(f.ids), errors, problem=f"must be a valid UUID: {value}"
        )
        if parsed is not None:
            parsed_ids.append(parsed)
    has_rack = rack_id is not None or rack_name is not None
    if rack_id is not None and rack_name is not None:
        errors.append((f.path(f.rack_id), f"{f.rack_id} and {f.rack_name} are mutually exclusive"))
    if has_rack and (ids or component_ids):
        errors.append(
            (
                f.path(f.rack_id),
                f"{f.rack_id}/{f.rack_name} cannot be combined with {f.ids}/{f.component_ids}",
            )
        )
    if component_ids and type is None:
        errors.append(
            (f.path(f.component_ids), f"{f.type} is required when {f.component_ids} is provided")
        )
    if any(not c.strip() for c in component_ids):
        errors.append((f.path(f.component_ids), "must not contain empty strings"))
    if slot_id is not None and slot_id < 0:
        errors.append((f.path(f.slot_id), "must be >= 0"))
    elif slot_id is not None and slot_id > MAX_SLOT_ID:
        errors.append((f.path(f.slot_id), f"must be <= {MAX_SLOT_ID}"))
    elif slot_id is not None and not has_rack:
        errors.append(
            (f.path(f.slot_id), f"{f.rack_id} or {f.rack_name} is required when {f.slot_id} is set")
        )
    if errors:
        raise ValidationFailed(summary, errors)
    return TraySelector(
        rack_id=parsed_rack,
        rack_name=rack_name,
        type=kind,
        component_ids=tuple(component_ids),
        ids=tuple(parsed_ids),
        slot_id=slot_id,
    )
