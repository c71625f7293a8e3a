"""The demo inventory `nico serve` seeds: org `demo`, site `demo-site` (Flow enabled, with
a firmware catalog) and one simulated GB200 NVL72-shaped rack `rack-01` with 35 trays.

Seeding goes through the same code as `POST /site` and `POST /rack`, so the demo site
gets its built-in rules and the rack passes the same validation an import does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nico import provisioning
from nico.config import Settings
from nico.domain import ComponentType
from nico.rules.install import install_builtin_defaults
from nico.schemas.inventory import RackCreateRequest
from nico.schemas.site import SiteRedfishInput
from nico.services import Services
from nico.store import inventory
from nico.store.models import Rack, Site

DEMO_ORG = "demo"
DEMO_SITE = "demo-site"
DEMO_RACK = "rack-01"
DEMO_SERIAL_PREFIX = "DEMO01"
DEMO_MANUFACTURER = "NVIDIA"
# The demo rack's first tray (see nvl72_rack): its identity survives any rename.
DEMO_MARKER_SERIAL = f"{DEMO_SERIAL_PREFIX}-PWR-01"

# Physical layout of a GB200 NVL72 rack, top to bottom: four power shelves, ten
# compute trays, nine NVLink switch trays, eight compute trays, four power shelves.
_BLOCKS: tuple[tuple[ComponentType, int], ...] = (
    (ComponentType.POWERSHELF, 4),
    (ComponentType.COMPUTE, 10),
    (ComponentType.NVLSWITCH, 9),
    (ComponentType.COMPUTE, 8),
    (ComponentType.POWERSHELF, 4),
)
_KIND: dict[ComponentType, tuple[str, str, str, int]] = {
    # type: (name prefix, serial code, model, MAC byte)
    ComponentType.COMPUTE: ("compute", "CMP", "GB200 NVL72 Compute Tray", 0x10),
    ComponentType.NVLSWITCH: ("nvswitch", "NVS", "NVLink Switch Tray (NVL72)", 0x20),
    ComponentType.POWERSHELF: ("powershelf", "PWR", "33kW Power Shelf", 0x30),
}
# The demo trays run DEMO_FIRMWARE; the catalog also offers DEMO_FIRMWARE_UPGRADE, so an
# upgrade without a version (or with it) has something to do, and asking for the
# version a tray already runs shows the skip (docs/firmware.md). The simulator never
# fetches the images; `.invalid` names can never resolve (RFC 2606).
DEMO_FIRMWARE = "1.0.0"
DEMO_FIRMWARE_UPGRADE = "1.1.0"


def demo_firmware_catalog() -> dict[str, dict[str, str]]:
    """Per tray type: the demo trays' version and a newer one."""
    return {
        kind.value: {
            version: f"https://firmware.invalid/demo/{kind.value.lower()}-{version}.fwpkg"
            for version in (DEMO_FIRMWARE, DEMO_FIRMWARE_UPGRADE)
        }
        for kind in (ComponentType.COMPUTE, ComponentType.NVLSWITCH, ComponentType.POWERSHELF)
    }


NVL72_COUNTS: dict[ComponentType, int] = {
    ComponentType.COMPUTE: 18,
    ComponentType.NVLSWITCH: 9,
    ComponentType.POWERSHELF: 8,
}


def nvl72_rack(
    name: str,
    *,
    site_id: str,
    serial_prefix: str,
    tag: int = 0,
    backend: str = "simulator",
    firmware_version: str = DEMO_FIRMWARE,
) -> dict[str, Any]:
    """`POST /rack` body for an NVL72-shaped rack: 18 Compute, 9 NVLSwitch, 8 PowerShelf.

    `serial_prefix` keeps serial numbers unique per manufacturer across racks; `tag`
    (0..9999) keeps BMC MACs unique and gives the rack its own simulated IP block.
    """
    if not 0 <= tag < 10000:
        raise ValueError("tag must be in 0..9999")
    components: list[dict[str, Any]] = []
    seen: dict[ComponentType, int] = {}
    slot = 0
    for kind, count in _BLOCKS:
        prefix, code, model, mac_byte = _KIND[kind]
        for _ in range(count):
            slot += 1
            index = seen.get(kind, 0)
            seen[kind] = index + 1
            tray_name = f"{prefix}-{index + 1:02d}"
            components.append(
                {
                    "type": kind.value,
                    "name": tray_name,
                    "manufacturer": "NVIDIA",
                    "model": model,
                    "serialNumber": f"{serial_prefix}-{code}-{index + 1:02d}",
                    "componentId": f"{name}/{tray_name}",
                    "firmwareVersion": firmware_version,
                    "position": {"slotId": slot, "trayIdx": index, "hostId": 0},
                    "bmcs": [
                        {
                            "type": "BmcTypeHost",
                            "macAddress": _mac(tag, mac_byte, index + 1),
                            "ipAddress": f"10.{42 + tag // 256}.{tag % 256}.{slot}",
                        }
                    ],
                }
            )
    return {
        "siteId": site_id,
        "name": name,
        "manufacturer": "NVIDIA",
        "model": "GB200 NVL72",
        "serialNumber": f"{serial_prefix}-RACK",
        "description": "Simulated GB200 NVL72 rack",
        "location": {"region": "demo", "datacenter": "dc-1", "room": "hall-a", "position": name},
        "backend": backend,
        "components": components,
    }


def _mac(tag: int, kind_byte: int, index: int) -> str:
    # 02:... is a locally administered address: never a real vendor's MAC.
    return f"02:4E:{tag // 256:02X}:{tag % 256:02X}:{kind_byte:02X}:{index:02X}"


@dataclass(frozen=True)
class DemoInventory:
    org: str
    site_id: uuid.UUID
    rack_id: uuid.UUID
    trays: int


async def seed_demo(services: Services) -> DemoInventory:
    """Create what is missing of the demo inventory; an existing one is left as it is.

    The demo rack is recognised by its first tray's serial number, not by a name: a user
    may rename the demo site or rack, and re-importing the rack then would collide with
    its own serial numbers and stop the server from starting.

    A demo site seeded before sites had firmware catalogs gets the demo catalog (else its
    firmware requests are a 400); one the operator set, an empty `{}` included, is kept.
    """
    async with services.db.session() as session:
        provider = await inventory.get_or_create_provider(session, DEMO_ORG)
        rack = await inventory.rack_holding_serial(
            session, provider.id, DEMO_MANUFACTURER, DEMO_MARKER_SERIAL
        )
        if rack is not None:
            site = await inventory.get_site(session, rack.site_id)
            assert site is not None  # a rack always has its site (foreign key)
            _give_catalog(site)
            await install_builtin_defaults(session, site.id)
            return await _demo_inventory(session, site, rack)
        site = await inventory.get_site_by_name(session, provider.id, DEMO_SITE)
        if site is None:
            site = await provisioning.create_site(
                session,
                provider,
                name=DEMO_SITE,
                description="Demo site with one simulated NVL72 rack",
                flow=True,
                redfish=SiteRedfishInput(firmware_catalog=demo_firmware_catalog()),
            )
        else:
            _give_catalog(site)
            await install_builtin_defaults(session, site.id)
        rack = await inventory.get_rack_by_name(session, site.id, DEMO_RACK)
        if rack is None:
            body = nvl72_rack(DEMO_RACK, site_id=str(site.id), serial_prefix=DEMO_SERIAL_PREFIX)
            request = RackCreateRequest.model_validate(body)
            rack = await provisioning.import_rack(session, site, request, services.secrets)
        return await _demo_inventory(session, site, rack)


def _give_catalog(site: Site) -> None:
    """The demo catalog for a demo site that has none (never replacing the operator's)."""
    if site.firmware_catalog is None:
        site.firmware_catalog = demo_firmware_catalog()


async def _demo_inventory(session: AsyncSession, site: Site, rack: Rack) -> DemoInventory:
    trays = await inventory.trays_of_racks(session, [rack.id])
    return DemoInventory(org=DEMO_ORG, site_id=site.id, rack_id=rack.id, trays=len(trays[rack.id]))


DEMO_TOKEN_TTL = 24 * 3600


def demo_banner(settings: Settings, demo: DemoInventory, token: str | None) -> str:
    """What `nico serve` prints: where the demo lives, a token, and two requests to try."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"http://{host}:{settings.port}" + settings.api_prefix().format(org=demo.org)
    lines = [
        f"nico-flow demo inventory: org {demo.org}, site {DEMO_SITE} (Flow enabled), "
        f"rack {DEMO_RACK} with {demo.trays} simulated trays",
        f"  site id: {demo.site_id}",
    ]
    if token is None:
        lines += [
            "  token:   no dev key configured; use a token from your OIDC issuer as $TOKEN",
            "",
        ]
    else:
        lines += [
            f"  token:   PROVIDER_ADMIN of {demo.org}, valid 24h "
            f"(another one: nico token --org {demo.org})",
            "",
            f"export TOKEN={token}",
        ]
    auth = '-H "Authorization: Bearer $TOKEN"'
    lines += [
        f"curl -s {auth} '{base}/tray?siteId={demo.site_id}&pageSize=100'",
        f"curl -s {auth} '{base}/rack?siteId={demo.site_id}&includeComponents=true'",
    ]
    return "\n".join(lines)
