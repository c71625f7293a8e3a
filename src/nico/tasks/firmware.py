"""The firmware version a FirmwareControl task installs, fixed and checked when it is
submitted.

`operationCode` only picks the rule; the version picks the image. A task therefore names
a concrete version before anything is dispatched, so the engine's VerifyFirmwareVersion
checks what was really installed. The site's firmware catalog (`redfish.firmwareCatalog`,
one for every backend of the site: Redfish maps its versions to images, the simulator
installs the version itself) is the list of versions a site may install:

- a given `version` must be listed for every component type the request targets, else
  the request is refused naming the version and the types (nothing is started);
- an upgrade without a version gets, per targeted type, the highest version listed;
  when the catalog lists none for a type, the request is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nico.domain import ComponentType
from nico.hardware.redfish.catalog import FirmwareCatalog, version_sort_key

RequestedVersion = str | dict[str, str]


class VersionRequired(ValueError):
    """No version given and the site's catalog cannot resolve one for every type."""


class VersionNotInCatalog(ValueError):
    """The given version is not listed in the site's catalog for some targeted type."""


def requested_version(
    version: str | None, catalog: Mapping[str, Any] | None, component_types: Iterable[str]
) -> RequestedVersion:
    """`version` (stripped) when the catalog lists it for every targeted type, else
    VersionNotInCatalog; without a version, `{component type: highest catalog version}`
    for every targeted type, else VersionRequired naming the types the catalog has
    nothing for."""
    offered = FirmwareCatalog(catalog)
    kinds = sorted({ComponentType.parse(t) for t in component_types}, key=_type_order)
    if version is not None:
        return _listed(version.strip(), offered, kinds)
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for kind in kinds:
        versions = offered.versions(kind)
        if versions:
            resolved[kind.value] = max(versions, key=version_sort_key)
        else:
            missing.append(kind.value)
    if missing:
        raise VersionRequired(
            "is required: the site's redfish.firmwareCatalog lists no version for "
            f"{', '.join(missing)} to upgrade to"
        )
    return resolved


def _listed(version: str, offered: FirmwareCatalog, kinds: list[ComponentType]) -> str:
    unlisted = [kind for kind in kinds if version not in offered.versions(kind)]
    if not unlisted:
        return version
    listed = "; ".join(
        f"{kind.value}: {', '.join(sorted(offered.versions(kind), key=version_sort_key)) or 'none'}"
        for kind in unlisted
    )
    raise VersionNotInCatalog(
        f"{version} is not in the site's firmware catalog for "
        f"{', '.join(k.value for k in unlisted)} (listed: {listed}); add it to the site's "
        "redfish.firmwareCatalog or name a listed version"
    )


def describe_version(version: RequestedVersion) -> str:
    """`2.1.0`, or `Compute 2.1.0, NVLSwitch 1.4.2` for a version per type."""
    if isinstance(version, str):
        return version
    return ", ".join(f"{kind} {value}" for kind, value in version.items())


def _type_order(kind: ComponentType) -> int:
    return list(ComponentType).index(kind)
