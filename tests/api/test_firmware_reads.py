"""`GET /rack/{id}/firmware` and `GET /tray/{id}/firmware`: per tray what it runs as last
observed (with observedAt), the site catalog's target for its type, and compliance; a
rack summary (docs/firmware.md). Observations are written the way the state sync and
tasks write them (`nico.store.observations`)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from nico.domain import FirmwareComponent
from nico.services import Services
from nico.store import observations as obs
from nico.store.history import SYNC
from nico.store.models import utcnow
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import BASE

# Targets: Compute 3.0.0 (its own entry beats `*`), every other type 2.1 (from `*`).
CATALOG = {
    "Compute": {
        "2.9.0": "https://fw.example/compute-2.9.0.fwpkg",
        "3.0.0": "https://fw.example/compute-3.0.0.fwpkg",
    },
    "*": {
        "1.0.0": "https://fw.example/any-1.0.0.fwpkg",
        "2.1": "https://fw.example/any-2.1.fwpkg",
    },
}
AT = utcnow().replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    return await make_site_with_rack(services, catalog=CATALOG)


def bundle(version: str, bios: str | None = None) -> tuple[FirmwareComponent, ...]:
    return (
        FirmwareComponent("BMC", version, "BMC_0"),
        FirmwareComponent("BIOS", bios or version, "BIOS_0"),
    )


async def observe(
    services: Services, tray_id: uuid.UUID, version: str, bios: str | None = None
) -> None:
    reading = obs.FirmwareReading(tray_id, AT, components=bundle(version, bios), version=version)
    async with services.db.session() as session:
        await obs.record_firmware(session, [reading], SYNC)


async def get(client: httpx.AsyncClient, auth: dict[str, str], path: str, site: Any) -> Any:
    response = await client.get(f"{BASE}{path}", params={"siteId": str(site)}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_never_read_trays_are_unknown_with_their_imported_version(
    client: httpx.AsyncClient, auth: dict[str, str], rack: MadeRack
) -> None:
    body = await get(client, auth, f"/rack/{rack.rack_id}/firmware", rack.site_id)
    assert body["id"] == str(rack.rack_id) and body["name"] == "rack-01"
    assert body["siteId"] == str(rack.site_id)
    assert body["summary"] == {
        "total": 35,
        "current": 0,
        "outdated": 0,
        "unknown": 35,
        "stale": 0,
    }
    first = body["components"][0]
    assert first == {
        "id": first["id"],
        "name": "powershelf-01",
        "type": "PowerShelf",
        "rackId": str(rack.rack_id),
        "version": "1.0.0",
        "observedAt": None,
        "error": None,
        "errorAt": None,
        "targetVersion": "2.1",
        "compliance": "unknown",
        "stale": False,
        "components": [],
        "tasks": [],
    }
    assert body["tasks"] == []


async def test_observed_versions_are_judged_against_the_catalog_target(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    current, outdated, *_ = rack.trays["Compute"]
    switch = rack.trays["NVLSwitch"][0]
    await observe(services, current, "3.0.0", bios="U58 v2.1")
    await observe(services, outdated, "2.9.0")
    await observe(services, switch, "2.1")

    tray = await get(client, auth, f"/tray/{current}/firmware", rack.site_id)
    assert (tray["version"], tray["targetVersion"], tray["compliance"]) == (
        "3.0.0",
        "3.0.0",
        "current",
    )
    assert tray["observedAt"] == AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The BMC reports the bundle's version: judged; the BIOS's own version: the catalog
    # has no target for it.
    assert tray["components"] == [
        {
            "name": "BMC",
            "id": "BMC_0",
            "version": "3.0.0",
            "targetVersion": "3.0.0",
            "compliance": "current",
        },
        {
            "name": "BIOS",
            "id": "BIOS_0",
            "version": "U58 v2.1",
            "targetVersion": None,
            "compliance": "unknown",
        },
    ]
    behind = await get(client, auth, f"/tray/{outdated}/firmware", rack.site_id)
    assert behind["compliance"] == "outdated"
    assert {c["compliance"] for c in behind["components"]} == {"outdated"}

    body = await get(client, auth, f"/rack/{rack.rack_id}/firmware", rack.site_id)
    assert body["summary"] == {
        "total": 35,
        "current": 2,
        "outdated": 1,
        "unknown": 32,
        "stale": 0,
    }
    by_id = {t["id"]: t["compliance"] for t in body["components"]}
    assert by_id[str(switch)] == "current"


async def test_a_failed_read_shows_its_error_next_to_the_last_good_version(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    tray = rack.trays["Compute"][0]
    await observe(services, tray, "2.9.0")
    failed = obs.FirmwareReading(tray, AT + timedelta(minutes=1), error="BMC unreachable")
    async with services.db.session() as session:
        await obs.record_firmware(session, [failed], SYNC)
    body = await get(client, auth, f"/tray/{tray}/firmware", rack.site_id)
    assert (body["version"], body["compliance"], body["error"]) == (
        "2.9.0",
        "outdated",
        "BMC unreachable",
    )
    assert body["observedAt"] < body["errorAt"]
    assert body["stale"] is True


async def test_compliance_judged_on_an_old_read_says_it_is_stale(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    """A tray read `current` whose reads now fail is not shown as plainly current: nico
    cannot see whether it was reflashed since."""
    tray = rack.trays["Compute"][0]
    await observe(services, tray, "3.0.0")
    fresh = await get(client, auth, f"/tray/{tray}/firmware", rack.site_id)
    assert (fresh["compliance"], fresh["stale"]) == ("current", False)

    failed = obs.FirmwareReading(tray, AT + timedelta(minutes=1), error="BMC unreachable")
    async with services.db.session() as session:
        await obs.record_firmware(session, [failed], SYNC)
    body = await get(client, auth, f"/tray/{tray}/firmware", rack.site_id)
    assert (body["compliance"], body["stale"], body["error"]) == (
        "current",
        True,
        "BMC unreachable",
    )
    summary = (await get(client, auth, f"/rack/{rack.rack_id}/firmware", rack.site_id))["summary"]
    assert (summary["current"], summary["stale"]) == (1, 1)

    # The next good read clears it.
    await observe(services, tray, "3.0.0")  # same AT: older than the failure, dropped
    later = obs.FirmwareReading(
        tray, AT + timedelta(minutes=2), components=bundle("3.0.0"), version="3.0.0"
    )
    async with services.db.session() as session:
        await obs.record_firmware(session, [later], SYNC)
    again = await get(client, auth, f"/tray/{tray}/firmware", rack.site_id)
    assert (again["compliance"], again["stale"], again["error"]) == ("current", False, None)


async def test_a_type_the_catalog_does_not_list_has_no_target(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    made = await make_site_with_rack(services, catalog={"Compute": CATALOG["Compute"]})
    shelf = made.trays["PowerShelf"][0]
    await observe(services, shelf, "1.0.0")
    body = await get(client, auth, f"/tray/{shelf}/firmware", made.site_id)
    assert (body["targetVersion"], body["compliance"]) == (None, "unknown")
    assert {c["compliance"] for c in body["components"]} == {"unknown"}


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/rack/not-a-uuid/firmware", 400, "Invalid Rack ID specified in URL"),
        ("/tray/not-a-uuid/firmware", 400, "Invalid Tray ID specified in URL"),
        (f"/rack/{uuid.uuid4()}/firmware", 404, "Rack not found"),
        (f"/tray/{uuid.uuid4()}/firmware", 404, "Tray not found"),
    ],
)
async def test_bad_and_unknown_ids(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    rack: MadeRack,
    path: str,
    status: int,
    message: str,
) -> None:
    response = await client.get(f"{BASE}{path}", params={"siteId": str(rack.site_id)}, headers=auth)
    assert response.status_code == status, response.text
    assert response.json()["message"] == message


async def test_another_sites_tray_reads_as_missing_and_site_id_is_required(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    other = await make_site_with_rack(services)
    tray = other.trays["Compute"][0]
    response = await client.get(
        f"{BASE}/tray/{tray}/firmware", params={"siteId": str(rack.site_id)}, headers=auth
    )
    assert response.status_code == 404
    response = await client.get(f"{BASE}/rack/{rack.rack_id}/firmware", headers=auth)
    assert response.status_code == 400
    assert "siteId" in response.json()["message"]


async def test_firmware_tasks_in_flight_show_on_the_rack_and_the_trays_they_target(
    client: httpx.AsyncClient, auth: dict[str, str], rack: MadeRack
) -> None:
    body = {
        "siteId": str(rack.site_id),
        "version": "2.1",
        "targets": ["psu"],
        "overrideVersionCheck": True,
    }
    started = await client.patch(f"{BASE}/rack/{rack.rack_id}/firmware", json=body, headers=auth)
    assert started.status_code == 200, started.text
    [task_id] = started.json()["taskIds"]

    shown = await get(client, auth, f"/rack/{rack.rack_id}/firmware", rack.site_id)
    [task] = shown["tasks"]
    assert (task["id"], task["operationCode"], task["version"]) == (task_id, "upgrade", "2.1")
    assert task["overrideVersionCheck"] is True
    assert task["status"] in ("Pending", "Running")
    targeted = {t["type"] for t in shown["components"] if t["tasks"]}
    assert targeted == {"PowerShelf"}  # `targets: [psu]` narrowed the task to the shelves
    compute = rack.trays["Compute"][0]
    assert (await get(client, auth, f"/tray/{compute}/firmware", rack.site_id))["tasks"] == []
    shelf = rack.trays["PowerShelf"][0]
    tray = await get(client, auth, f"/tray/{shelf}/firmware", rack.site_id)
    assert [t["id"] for t in tray["tasks"]] == [task_id]
