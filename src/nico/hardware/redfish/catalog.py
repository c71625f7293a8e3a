"""Which firmware image a Redfish update installs: the site firmware catalog.

The catalog is the Site's `firmware_catalog` JSON, one map per component type (or `*`
for any type) from version to image URI:

    {"Compute": {"2.1.0": "https://fw.example/compute-2.1.0.fwpkg"},
     "*": {"1.0.0": "https://fw.example/any-1.0.0.bin"}}

Resolution order for `firmware_start(version)`: the tray type's entry, then `*`; no
version means the highest version the catalog lists for the type. Anything else fails
before the BMC is asked. A version is never an image URL: the API refuses one, so the
version a task verifies is always the version the operator named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nico.domain import ComponentType
from nico.hardware.interface import HardwareError

ANY_TYPE = "*"
_URL = re.compile(r"^(https?|ftp|sftp|scp|tftp|nfs|cifs)://", re.IGNORECASE)


def is_image_uri(version: str) -> bool:
    return bool(_URL.match(version.strip()))


def version_sort_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order: `1.10.0` after `1.9.2`; numbers before letters in each part."""
    parts = re.findall(r"\d+|[A-Za-z]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts)


class FirmwareCatalog:
    """A site's version -> image URI map per component type."""

    def __init__(self, raw: Mapping[str, Any] | None) -> None:
        self._by_type: dict[str, dict[str, str]] = {}
        for key, versions in (raw or {}).items():
            if not isinstance(versions, Mapping):
                continue
            type_key = key if key == ANY_TYPE else _type_key(key)
            if type_key is None:
                continue
            entries = {
                str(v).strip(): uri.strip()
                for v, uri in versions.items()
                if isinstance(uri, str) and uri.strip()
            }
            self._by_type.setdefault(type_key, {}).update(entries)

    def versions(self, component_type: ComponentType) -> dict[str, str]:
        """Every version the catalog offers this type (type entries override `*`)."""
        merged = dict(self._by_type.get(ANY_TYPE, {}))
        merged.update(self._by_type.get(component_type.value, {}))
        return merged

    def image_uri(self, component_type: ComponentType, version: str | None) -> tuple[str, str]:
        """(version, image URI) to install; HardwareError when the catalog has none."""
        offered = self.versions(component_type)
        if version is None or not version.strip():
            if not offered:
                raise HardwareError(
                    f"no firmware version given and the site firmware catalog lists no "
                    f"image for {component_type.value}",
                    retryable=False,
                )
            latest = max(offered, key=version_sort_key)
            return latest, offered[latest]
        uri = offered.get(version.strip())
        if uri is None:
            known = ", ".join(sorted(offered, key=version_sort_key)) or "none"
            raise HardwareError(
                f"site firmware catalog has no image for {component_type.value} version "
                f"{version.strip()} (versions listed: {known}); add it to the site's "
                "redfish.firmwareCatalog",
                retryable=False,
            )
        return version.strip(), uri


def _type_key(key: str) -> str | None:
    try:
        return ComponentType.parse(key).value
    except ValueError:
        return None
