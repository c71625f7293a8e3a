"""The firmware version a FirmwareControl task installs, fixed when it is submitted.

`operationCode` only picks the rule; the version picks the image. A task therefore names
a concrete version before anything is dispatched, so the engine's VerifyFirmwareVersion
checks what was really installed. An upgrade without a version gets, per component type
it targets, the highest version the site's firmware catalog lists (the lookup the Redfish
backend uses to pick the image); when the catalog cannot say, the request is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nico.domain import ComponentType
from nico.hardware.interface import HardwareError
from nico.hardware.redfish.catalog import FirmwareCatalog

RequestedVersion = str | dict[str, str]


class VersionRequired(ValueError):
    """No version given and the site's catalog cannot resolve one for every type."""


def requested_version(
    version: str | None, catalog: Mapping[str, Any] | None, component_types: Iterable[str]
) -> RequestedVersion:
    """`version` as given, else `{component type: highest catalog version}` for every
    targeted type; VersionRequired naming the types the catalog has nothing for."""
    if version is not None:
        return version
    offered = FirmwareCatalog(catalog)
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for kind in sorted({ComponentType.parse(t) for t in component_types}, key=_type_order):
        try:
            resolved[kind.value], _ = offered.image_uri(kind, None)
        except HardwareError:
            missing.append(kind.value)
    if missing:
        raise VersionRequired(
            "is required: the site's redfish.firmwareCatalog lists no version for "
            f"{', '.join(missing)} to upgrade to"
        )
    return resolved


def describe_version(version: RequestedVersion) -> str:
    """`2.1.0`, or `Compute 2.1.0, NVLSwitch 1.4.2` for a version per type."""
    if isinstance(version, str):
        return version
    return ", ".join(f"{kind} {value}" for kind, value in version.items())


def _type_order(kind: ComponentType) -> int:
    return list(ComponentType).index(kind)
