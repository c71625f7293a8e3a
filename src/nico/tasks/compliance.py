"""Firmware compliance: what a tray runs (as last observed) against the site catalog's
target for its type. Pure: the caller reads the tray, its observation and the catalog.

How the target is derived (docs/firmware.md):
- a tray type's target is the highest version the site's firmware catalog lists for it
  (its own entry and `*`, natural order) — what an upgrade without a version installs;
- the catalog versions a tray's firmware bundle, whose version is the tray's main version
  (`firmwareVersion`: the version the backend reads as the tray's running one);
- an inventory component reporting that main version carries the bundle's target and
  compliance; any other component is informational (`unknown`): the catalog has no
  target for it.

Compliance is `current` (main version == target), `outdated` (it differs: older, newer
or unlisted), or `unknown` (no target for the type, or the tray's firmware was never
read from its BMC). While the last read failed it stays the last good inventory's
judgement, marked `stale`: the tray may have changed since, nico cannot see it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from nico.domain import ComponentType
from nico.hardware.redfish.catalog import FirmwareCatalog, version_sort_key
from nico.store.models import Tray
from nico.store.observations import TrayObserved


class Compliance(StrEnum):
    CURRENT = "current"
    OUTDATED = "outdated"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ComponentCompliance:
    name: str
    id: str | None
    version: str
    target: str | None
    compliance: Compliance


@dataclass(frozen=True)
class TrayCompliance:
    tray: Tray
    # The tray's main version and when its firmware was last read (None: never read,
    # `version` is then what inventory import said).
    version: str | None
    observed_at: datetime | None
    error: str | None
    error_at: datetime | None
    target: str | None
    compliance: Compliance
    components: tuple[ComponentCompliance, ...]

    @property
    def stale(self) -> bool:
        """The last firmware read failed: what is shown is the last good read's."""
        return self.error is not None


def catalog_targets(raw: Mapping[str, Any] | None) -> dict[str, str | None]:
    """Per tray type (wire name): the catalog's highest version, or None."""
    catalog = FirmwareCatalog(raw)
    out: dict[str, str | None] = {}
    for kind in ComponentType:
        versions = catalog.versions(kind)
        out[kind.value] = max(versions, key=version_sort_key) if versions else None
    return out


def _judge(version: str | None, target: str | None) -> Compliance:
    if version is None or target is None:
        return Compliance.UNKNOWN
    return Compliance.CURRENT if version == target else Compliance.OUTDATED


def tray_compliance(
    tray: Tray, observed: TrayObserved | None, targets: Mapping[str, str | None]
) -> TrayCompliance:
    """One tray's installed firmware against its type's target."""
    target = targets.get(tray.type)
    read = observed is not None and observed.firmware_observed_at is not None
    version = tray.firmware_version or None
    compliance = _judge(version if read else None, target)
    components: list[ComponentCompliance] = []
    for component in (observed.firmware_inventory or ()) if observed is not None else ():
        main = read and component.version == version
        components.append(
            ComponentCompliance(
                name=component.name,
                id=component.id,
                version=component.version,
                target=target if main else None,
                compliance=compliance if main else Compliance.UNKNOWN,
            )
        )
    return TrayCompliance(
        tray=tray,
        version=version,
        observed_at=observed.firmware_observed_at if observed is not None else None,
        error=observed.firmware_error if observed is not None else None,
        error_at=observed.firmware_error_at if observed is not None else None,
        target=target,
        compliance=compliance,
        components=tuple(components),
    )


def summary(trays: Iterable[TrayCompliance]) -> dict[Compliance, int]:
    """How many trays are current, outdated and unknown (every key present)."""
    counted = Counter(t.compliance for t in trays)
    return {c: counted.get(c, 0) for c in Compliance}


def stale_count(trays: Iterable[TrayCompliance]) -> int:
    """How many trays are judged on an old inventory because their last read failed."""
    return sum(t.stale for t in trays)
