"""A firmware request's `version` must be listed in the site's firmware catalog for every
tray type it targets, on simulator sites as on Redfish ones: otherwise 400 naming the
version and the types, and no task is created (docs/firmware.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from nico.seed import DEMO_FIRMWARE_UPGRADE, seed_demo
from nico.services import Services
from nico.store.models import Site
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import BASE, count_tasks, load_task

FIRMWARE_FAILED = "Failed to validate firmware update request data"
BATCH_FAILED = "Failed to validate request data"
ALL_TYPES_UNLISTED = (
    "no-such-version is not in the site's firmware catalog for Compute, NVLSwitch, "
    "PowerShelf (listed: Compute: 1.0.0, 2.0.0, 2.1; NVLSwitch: 1.0.0, 2.0.0, 2.1; "
    "PowerShelf: 1.0.0, 2.0.0, 2.1); add it to the site's redfish.firmwareCatalog or "
    "name a listed version"
)


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    return await make_site_with_rack(services)


# (path template, extra body, summary); each targets every tray type of the rack
REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("/rack/{rack}/firmware", {}, FIRMWARE_FAILED),
    ("/rack/firmware", {"filter": {"names": ["rack-01"]}}, BATCH_FAILED),
    ("/tray/firmware", {"filter": {"rackName": "rack-01"}}, BATCH_FAILED),
]


@pytest.mark.parametrize(("template", "extra", "summary"), REQUESTS, ids=[r[0] for r in REQUESTS])
async def test_an_unlisted_version_is_400_naming_version_and_types_and_starts_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    template: str,
    extra: dict[str, Any],
    summary: str,
) -> None:
    body = {"siteId": str(rack.site_id), "version": "no-such-version", **extra}
    path = BASE + template.format(rack=rack.rack_id)
    response = await client.patch(path, json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(summary)
    assert response.json()["data"] == {"version": ALL_TYPES_UNLISTED}
    assert await count_tasks(services) == 0


async def test_a_tray_request_names_only_its_own_type(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    tray = rack.trays["PowerShelf"][0]
    body = {"siteId": str(rack.site_id), "version": "9.9"}
    response = await client.patch(f"{BASE}/tray/{tray}/firmware", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["data"] == {
        "version": "9.9 is not in the site's firmware catalog for PowerShelf (listed: "
        "PowerShelf: 1.0.0, 2.0.0, 2.1); add it to the site's redfish.firmwareCatalog or "
        "name a listed version"
    }
    assert await count_tasks(services) == 0


async def test_a_version_listed_for_some_types_only_serves_those_types(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    catalog = {
        "Compute": {"3.0.0": "https://fw.example/compute-3.0.0.fwpkg"},
        "NVLSwitch": {"1.4.2": "https://fw.example/switch-1.4.2.fwpkg"},
    }
    rack = await make_site_with_rack(services, catalog=catalog)
    site = {"siteId": str(rack.site_id), "version": "3.0.0"}

    whole = await client.patch(f"{BASE}/rack/{rack.rack_id}/firmware", json=site, headers=auth)
    assert whole.status_code == 400, whole.text
    assert whole.json()["data"] == {
        "version": "3.0.0 is not in the site's firmware catalog for NVLSwitch, PowerShelf "
        "(listed: NVLSwitch: 1.4.2; PowerShelf: none); add it to the site's "
        "redfish.firmwareCatalog or name a listed version"
    }
    assert await count_tasks(services) == 0

    # Targets that only Compute trays have narrow the request to Compute: accepted.
    narrowed = site | {"targets": ["dpu"]}
    response = await client.patch(
        f"{BASE}/rack/{rack.rack_id}/firmware", json=narrowed, headers=auth
    )
    assert response.status_code == 200, response.text
    [task_id] = response.json()["taskIds"]
    task = await load_task(services, task_id)
    assert sorted(task.targets) == ["Compute"]
    assert task.information == {"version": "3.0.0", "targets": ["dpu"]}


async def test_a_listed_version_is_accepted_as_listed(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    body = {"siteId": str(rack.site_id), "version": " 2.1 "}
    response = await client.patch(f"{BASE}/rack/{rack.rack_id}/firmware", json=body, headers=auth)
    assert response.status_code == 200, response.text
    [task_id] = response.json()["taskIds"]
    task = await load_task(services, task_id)
    assert task.information == {"version": "2.1"}
    assert task.description == "API firmware upgrade Rack to 2.1"


async def test_the_demo_site_has_a_catalog_with_a_newer_version_per_type(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    demo = await seed_demo(services)
    site = {"siteId": str(demo.site_id)}
    shown = await client.get(f"{BASE}/site/{demo.site_id}", headers=auth)
    catalog = shown.json()["redfish"]["firmwareCatalog"]
    assert {kind: sorted(versions) for kind, versions in catalog.items()} == {
        "Compute": ["1.0.0", "1.1.0"],
        "NVLSwitch": ["1.0.0", "1.1.0"],
        "PowerShelf": ["1.0.0", "1.1.0"],
    }
    response = await client.patch(f"{BASE}/rack/{demo.rack_id}/firmware", json=site, headers=auth)
    assert response.status_code == 200, response.text
    [task_id] = response.json()["taskIds"]
    per_type = {kind: DEMO_FIRMWARE_UPGRADE for kind in ("Compute", "NVLSwitch", "PowerShelf")}
    assert (await load_task(services, task_id)).information == {"version": per_type}


@pytest.mark.parametrize(("flag", "stored"), [(True, True), (False, None), (None, None)])
async def test_override_version_check_travels_to_the_engine(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    flag: bool | None,
    stored: bool | None,
) -> None:
    body: dict[str, Any] = {"siteId": str(rack.site_id), "version": "2.0.0"}
    if flag is not None:
        body["overrideVersionCheck"] = flag
    response = await client.patch(f"{BASE}/rack/{rack.rack_id}/firmware", json=body, headers=auth)
    assert response.status_code == 200, response.text
    [task_id] = response.json()["taskIds"]
    info = (await load_task(services, task_id)).information
    assert info.get("overrideVersionCheck") is stored


async def test_override_version_check_must_be_a_boolean(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    body = {"siteId": str(rack.site_id), "version": "2.0.0", "overrideVersionCheck": "yes"}
    response = await client.patch(f"{BASE}/rack/{rack.rack_id}/firmware", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert "overrideVersionCheck" in response.json()["data"]
    assert await count_tasks(services) == 0


async def _set_demo_catalog(services: Services, site_id: object, catalog: object) -> None:
    async with services.db.session() as session:
        site = await session.get(Site, site_id)
        assert site is not None
        site.firmware_catalog = catalog


async def test_a_demo_site_seeded_before_catalogs_gets_one_at_the_next_start(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    """A demo database from before catalogs: firmware requests were a 400 until the
    operator added one; `nico serve`'s seeding gives the demo site its catalog."""
    demo = await seed_demo(services)
    await _set_demo_catalog(services, demo.site_id, None)  # as seeded before catalogs
    path, site = f"{BASE}/rack/{demo.rack_id}/firmware", {"siteId": str(demo.site_id)}
    before = await client.patch(path, json=site, headers=auth)
    assert before.status_code == 400, before.text

    assert (await seed_demo(services)).site_id == demo.site_id
    after = await client.patch(path, json=site, headers=auth)
    assert after.status_code == 200, after.text
    [task_id] = after.json()["taskIds"]
    per_type = {kind: DEMO_FIRMWARE_UPGRADE for kind in ("Compute", "NVLSwitch", "PowerShelf")}
    assert (await load_task(services, task_id)).information == {"version": per_type}


@pytest.mark.parametrize("catalog", [{}, {"compute": {"9.0": "https://fw.example/c-9.0.bin"}}])
async def test_the_demo_seeding_keeps_a_catalog_the_operator_set(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, catalog: object
) -> None:
    demo = await seed_demo(services)
    changed = await client.patch(
        f"{BASE}/site/{demo.site_id}",
        json={"redfish": {"firmwareCatalog": catalog}},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    await seed_demo(services)
    shown = await client.get(f"{BASE}/site/{demo.site_id}", headers=auth)
    assert (
        shown.json()["redfish"]["firmwareCatalog"] == changed.json()["redfish"]["firmwareCatalog"]
    )
    assert "1.1.0" not in str(shown.json()["redfish"]["firmwareCatalog"])  # not the demo's
