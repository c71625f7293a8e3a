"""Create a site and an NVL72-shaped rack (18 Compute, 9 NVLSwitch, 8 PowerShelf) for a
test, through the HTTP API or straight through the store.

Through the API (what a user does; `client` and `auth` are the conftest fixtures):

    site = await create_site(client, auth)                       # Flow enabled
    rack = await create_nvl72_rack(client, auth, site["id"])     # body incl. components

Through the store (no HTTP; engine, task and simulator tests):

    made = await make_site_with_rack(services)                   # `services` fixture
    made.site_id, made.rack_id, made.trays["Compute"]            # tray ids in name order

Every rack gets fresh serial numbers and BMC MACs, so a test may create several.
Set `password=` to give every BMC credentials (stored encrypted, as an import would).
Every site gets TEST_FIRMWARE_CATALOG (a firmware request must name a version the site's
catalog lists); pass `catalog=None` for a site without one.
"""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from nico import provisioning
from nico.schemas.inventory import RackCreateRequest
from nico.schemas.site import SiteRedfishInput
from nico.seed import nvl72_rack
from nico.services import Services
from nico.store import inventory

BASE = "/v2/org/{org}/nico"
_TAGS = itertools.count(random.randrange(5000))

# The versions test sites may install, for every tray type (the racks start at 1.0.0).
TEST_FIRMWARE_VERSIONS = ("1.0.0", "2.0.0", "2.1")
TEST_FIRMWARE_CATALOG: dict[str, dict[str, str]] = {
    "*": {v: f"https://fw.example/any-{v}.fwpkg" for v in TEST_FIRMWARE_VERSIONS}
}
Catalog = dict[str, dict[str, str]] | None


def nvl72_body(
    site_id: str,
    name: str = "rack-01",
    *,
    backend: str = "simulator",
    password: str | None = None,
) -> dict[str, Any]:
    """A `POST /rack` body with serials and MACs no other rack in this run uses."""
    body = nvl72_rack(
        name,
        site_id=site_id,
        serial_prefix=f"T{uuid.uuid4().hex[:10].upper()}",
        tag=next(_TAGS) % 10000,
        backend=backend,
    )
    if password is not None:
        for component in body["components"]:
            for bmc in component["bmcs"]:
                bmc["username"] = "admin"
                bmc["password"] = password
    return body


async def create_site(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    org: str = "demo",
    name: str | None = None,
    flow: bool = True,
    catalog: Catalog = TEST_FIRMWARE_CATALOG,
) -> dict[str, Any]:
    """`POST /site`; returns the created Site body."""
    body: dict[str, Any] = {
        "name": name or f"site-{uuid.uuid4().hex[:8]}",
        "capabilities": {"flow": flow},
    }
    if catalog is not None:
        body["redfish"] = {"firmwareCatalog": catalog}
    response = await client.post(BASE.format(org=org) + "/site", json=body, headers=headers)
    assert response.status_code == 201, response.text
    site: dict[str, Any] = response.json()
    return site


async def create_nvl72_rack(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    site_id: str,
    *,
    org: str = "demo",
    name: str = "rack-01",
    backend: str = "simulator",
    password: str | None = None,
) -> dict[str, Any]:
    """`POST /rack` of an NVL72-shaped rack; returns the Rack body with `components`."""
    body = nvl72_body(site_id, name, backend=backend, password=password)
    response = await client.post(BASE.format(org=org) + "/rack", json=body, headers=headers)
    assert response.status_code == 201, response.text
    rack: dict[str, Any] = response.json()
    return rack


@dataclass(frozen=True)
class MadeRack:
    site_id: uuid.UUID
    rack_id: uuid.UUID
    # Wire type name ("Compute", "NVLSwitch", "PowerShelf") -> tray ids in name order.
    trays: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    tray_names: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def tray_ids(self) -> list[uuid.UUID]:
        return [tray_id for ids in self.trays.values() for tray_id in ids]


async def make_site_with_rack(
    services: Services,
    *,
    org: str = "demo",
    site_name: str | None = None,
    flow: bool = True,
    rack_name: str = "rack-01",
    backend: str = "simulator",
    password: str | None = None,
    catalog: Catalog = TEST_FIRMWARE_CATALOG,
) -> MadeRack:
    """Provider (if missing) + site + NVL72 rack, written through the same code the API
    uses (built-in rules installed on the site, passwords encrypted)."""
    async with services.db.session() as session:
        provider = await inventory.get_or_create_provider(session, org)
        site = await provisioning.create_site(
            session,
            provider,
            name=site_name or f"site-{uuid.uuid4().hex[:8]}",
            description="",
            flow=flow,
            redfish=(None if catalog is None else SiteRedfishInput(firmware_catalog=dict(catalog))),
        )
        body = nvl72_body(str(site.id), rack_name, backend=backend, password=password)
        rack = await provisioning.import_rack(
            session, site, RackCreateRequest.model_validate(body), services.secrets
        )
        trays = (await inventory.trays_of_racks(session, [rack.id]))[rack.id]
    by_type: dict[str, list[uuid.UUID]] = {}
    for tray in sorted(trays, key=lambda t: t.name):
        by_type.setdefault(tray.type, []).append(tray.id)
    return MadeRack(
        site_id=site.id,
        rack_id=rack.id,
        trays=by_type,
        tray_names={t.id: t.name for t in trays},
    )
