"""Power, firmware and bring-up endpoints: one task per rack, the right trays, upstream's
validation messages, and nothing started on bad input.

These run without Temporal (API-only), so an accepted task stays Pending: exactly what a
conflict check sees while a workflow has not started yet.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from nico.schemas.operations import PowerRequest
from nico.services import Services
from nico.store.models import IdempotencyKey, Task
from tests.conftest import TokenFactory
from tests.support.inventory import MadeRack, make_site_with_rack
from tests.support.tasks import BASE, add_rack, count_tasks, load_task


@pytest.fixture
async def rack(services: Services) -> MadeRack:
    return await make_site_with_rack(services)


async def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    ids: list[str] = response.json()["taskIds"]
    return ids


def _tray_ids(task: Task) -> set[str]:
    return {t for ids in task.targets.values() for t in ids}


async def test_rack_power_targets_every_operable_tray(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    response = await client.patch(
        f"{BASE}/rack/{rack.rack_id}/power",
        json={"siteId": str(rack.site_id), "state": "ON"},
        headers=auth,
    )
    [task_id] = await _ids(response)
    task = await load_task(services, task_id)
    assert (task.operation_type, task.operation_code) == ("PowerControl", "power_on")
    assert task.status == "Pending" and task.message == "Pending"
    assert task.description == "API power on Rack"
    # Recorded in upstream's PascalCase, whatever casing the request used.
    assert task.information == {"state": "On"}
    assert {k: len(v) for k, v in task.targets.items()} == {
        "Compute": 18,
        "NVLSwitch": 9,
        "PowerShelf": 8,
    }
    # The site's default rule was resolved and snapshotted at dispatch.
    assert task.rule_id is not None and task.rule_source == "default"
    assert task.rule_definition and task.rule_definition["steps"]


STATES_ERROR = "must be one of [On Off Cycle ForceOff ForceCycle ACPowerCycle]"


@pytest.mark.parametrize(
    ("state", "code", "canonical", "words"),
    [
        ("off", "power_off", "Off", "power off"),
        ("cycle", "restart", "Cycle", "power cycle"),
        ("Cycle", "restart", "Cycle", "power cycle"),
        ("ForceOff", "force_power_off", "ForceOff", "force power off"),
        ("forceoff", "force_power_off", "ForceOff", "force power off"),
        ("forcecycle", "force_restart", "ForceCycle", "force power cycle"),
        ("ForceCycle", "force_restart", "ForceCycle", "force power cycle"),
        ("On", "power_on", "On", "power on"),
    ],
)
async def test_power_states_map_to_codes_in_either_casing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    state: str,
    code: str,
    canonical: str,
    words: str,
) -> None:
    tray = rack.trays["Compute"][0]
    response = await client.patch(
        f"{BASE}/tray/{tray}/power",
        json={"siteId": str(rack.site_id), "state": state},
        headers=auth,
    )
    [task_id] = await _ids(response)
    task = await load_task(services, task_id)
    assert task.operation_code == code
    assert task.information == {"state": canonical}
    assert task.description == f"API {words} Tray"


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("off", "power_off"),
        ("cycle", "restart"),
        ("ForceOff", "force_power_off"),
        ("forcecycle", "force_restart"),
    ],
)
async def test_power_states_map_to_codes(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    state: str,
    code: str,
) -> None:
    tray = rack.trays["Compute"][0]
    response = await client.patch(
        f"{BASE}/tray/{tray}/power",
        json={"siteId": str(rack.site_id), "state": state, "description": "maintenance"},
        headers=auth,
    )
    [task_id] = await _ids(response)
    task = await load_task(services, task_id)
    assert task.operation_code == code
    assert task.targets == {"Compute": [str(tray)]}
    assert task.description == "maintenance"


async def test_batch_rack_power_needs_a_filter_or_all(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    second = await add_rack(services, rack.site_id, "rack-02")
    body: dict[str, Any] = {"siteId": str(rack.site_id), "state": "off"}
    refused = await client.patch(f"{BASE}/rack/power", json=body, headers=auth)
    assert refused.status_code == 400
    assert refused.json()["data"] == {
        "filter": 'is required; to act on the whole site set "all": true'
    }
    assert await count_tasks(services) == 0

    ids = await _ids(
        await client.patch(f"{BASE}/rack/power", json=body | {"all": True}, headers=auth)
    )
    racks = {(await load_task(services, i)).rack_id for i in ids}
    assert racks == {rack.rack_id, second.rack_id}
    assert (await load_task(services, ids[0])).description == "API power off Racks"


async def test_batch_rack_power_by_name(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    second = await add_rack(services, rack.site_id, "rack-02")
    body = {"siteId": str(rack.site_id), "state": "on", "filter": {"names": ["rack-02"]}}
    [task_id] = await _ids(await client.patch(f"{BASE}/rack/power", json=body, headers=auth))
    assert (await load_task(services, task_id)).rack_id == second.rack_id

    body["filter"] = {"names": ["rack-01", "nope"]}
    response = await client.patch(f"{BASE}/rack/power", json=body, headers=auth)
    assert response.status_code == 400
    assert response.json()["data"] == {"filter.names": "no rack named 'nope' in the site"}

    both = body | {"filter": {"names": ["rack-01"]}, "all": True}
    response = await client.patch(f"{BASE}/rack/power", json=both, headers=auth)
    assert response.status_code == 400
    assert response.json()["data"] == {"all": "cannot be combined with filter"}
    assert await count_tasks(services) == 1


async def test_tray_filter_groups_one_task_per_rack(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    second = await add_rack(services, rack.site_id, "rack-02")
    picked = [rack.trays["Compute"][0], rack.trays["Compute"][1], second.trays["NVLSwitch"][0]]
    body = {
        "siteId": str(rack.site_id),
        "state": "cycle",
        "filter": {"ids": [str(t) for t in picked]},
    }
    ids = await _ids(await client.patch(f"{BASE}/tray/power", json=body, headers=auth))
    assert len(ids) == 2
    tasks = {(await load_task(services, i)).rack_id: await load_task(services, i) for i in ids}
    assert _tray_ids(tasks[rack.rack_id]) == {str(picked[0]), str(picked[1])}
    assert tasks[second.rack_id].targets == {"NVLSwitch": [str(picked[2])]}


async def test_tray_filter_by_rack_and_type(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    body = {
        "siteId": str(rack.site_id),
        "state": "on",
        "filter": {"rackName": "rack-01", "type": "nvswitch"},
    }
    [task_id] = await _ids(await client.patch(f"{BASE}/tray/power", json=body, headers=auth))
    task = await load_task(services, task_id)
    assert list(task.targets) == ["NVLSwitch"] and len(task.targets["NVLSwitch"]) == 9


async def test_slot_filter_matching_nothing_starts_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    body = {
        "siteId": str(rack.site_id),
        "state": "on",
        "filter": {"rackId": str(rack.rack_id), "slotId": 99},
    }
    response = await client.patch(f"{BASE}/tray/power", json=body, headers=auth)
    assert response.status_code == 200 and response.json() == {"taskIds": []}
    body["filter"] = {"rackId": str(rack.rack_id), "slotId": 1}
    [task_id] = await _ids(await client.patch(f"{BASE}/tray/power", json=body, headers=auth))
    assert (await load_task(services, task_id)).targets == {
        "PowerShelf": [str(rack.trays["PowerShelf"][0])]
    }


@pytest.mark.parametrize(
    ("flt", "data"),
    [
        (
            {"rackId": "x", "rackName": "rack-01"},
            {"filter.rackId": "must be a valid UUID"},
        ),
        (
            {"rackId": "00000000-0000-0000-0000-000000000001", "rackName": "rack-01"},
            {"filter.rackId": "rackId and rackName are mutually exclusive"},
        ),
        (
            {"rackName": "rack-01", "ids": ["00000000-0000-0000-0000-000000000001"]},
            {"filter.rackId": "rackId/rackName cannot be combined with ids/componentIds"},
        ),
        (
            {"componentIds": ["rack-01/compute-01"]},
            {"filter.componentIds": "type is required when componentIds is provided"},
        ),
        ({"slotId": 3}, {"filter.slotId": "rackId or rackName is required when slotId is set"}),
        ({"type": "TorSwitch"}, {"filter.type": "must be one of [Compute NVLSwitch PowerShelf]"}),
        ({"rackName": "nope"}, {"filter.rackName": "no rack 'nope' in the site"}),
        (
            {"ids": ["00000000-0000-0000-0000-000000000001"]},
            {"filter.ids": "no tray 00000000-0000-0000-0000-000000000001 in the site"},
        ),
        ({"bogus": 1}, {"filter.bogus": "is not a known field"}),
    ],
)
async def test_bad_tray_filters_are_400_naming_the_field(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    flt: dict[str, Any],
    data: dict[str, str],
) -> None:
    body = {"siteId": str(rack.site_id), "state": "on", "filter": flt}
    response = await client.patch(f"{BASE}/tray/power", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["data"] == data
    assert response.json()["message"].startswith("Failed to validate request data")
    assert await count_tasks(services) == 0


async def test_component_ids_with_type_select_trays(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    body = {
        "siteId": str(rack.site_id),
        "state": "off",
        "filter": {"type": "Compute", "componentIds": ["rack-01/compute-03"]},
    }
    [task_id] = await _ids(await client.patch(f"{BASE}/tray/power", json=body, headers=auth))
    assert (await load_task(services, task_id)).targets == {
        "Compute": [str(rack.trays["Compute"][2])]
    }


SINGLE_RACK = [
    ("patch", "/rack/{rack}/power", "Failed to validate power control request data"),
    ("patch", "/tray/{tray}/power", "Failed to validate power control request data"),
    ("patch", "/rack/{rack}/firmware", "Failed to validate firmware update request data"),
    ("patch", "/tray/{tray}/firmware", "Failed to validate firmware update request data"),
    ("post", "/rack/{rack}/bringup", "Failed to validate bring up request data"),
]


def _path(template: str, rack: MadeRack) -> str:
    return BASE + template.format(rack=rack.rack_id, tray=rack.trays["Compute"][0])


def _valid_body(path: str, rack: MadeRack) -> dict[str, Any]:
    body: dict[str, Any] = {"siteId": str(rack.site_id)}
    if path.endswith("power"):
        body["state"] = "on"
    if path.endswith("firmware"):
        body["version"] = "2.0.0"
    return body


BAD_BODIES: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("no siteId", {"siteId": None}, {"siteId": "must be a valid UUID"}),
    ("bad siteId", {"siteId": "abc"}, {"siteId": "must be a valid UUID"}),
    ("unknown field", {"colour": "red"}, {"colour": "is not a known field"}),
    ("bad ruleId", {"ruleId": "r1"}, {"ruleId": "must be a valid UUID"}),
    (
        "bad strategy",
        {"conflictStrategy": "wait"},
        {"conflictStrategy": "must be one of [reject queue]"},
    ),
    ("bad timeout", {"conflictStrategy": "queue", "queueTimeout": "soon"}, {}),
    (
        "timeout too long",
        {"conflictStrategy": "queue", "queueTimeout": "25h"},
        {"queueTimeout": "must be at most 24h"},
    ),
    (
        "timeout without queue",
        {"queueTimeout": "10m"},
        {"queueTimeout": "requires conflictStrategy queue"},
    ),
]


@pytest.mark.parametrize(("method", "template", "summary"), SINGLE_RACK)
@pytest.mark.parametrize(("case", "change", "data"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_bad_bodies_are_400_and_start_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    method: str,
    template: str,
    summary: str,
    case: str,
    change: dict[str, Any],
    data: dict[str, str],
) -> None:
    body = _valid_body(template, rack) | change
    response = await client.request(method, _path(template, rack), json=body, headers=auth)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["source"] == "nico"
    assert error["message"].startswith(summary + ": ")
    for field, message in data.items():
        assert error["data"][field] == message
    assert error["data"], case
    assert await count_tasks(services) == 0


@pytest.mark.parametrize(
    ("body", "data"),
    [
        ({}, {"state": "is required"}),
        ({"state": "bogus"}, {"state": STATES_ERROR}),
        ({"state": None}, {"state": "is required"}),
        ({"state": 1}, {"state": STATES_ERROR}),
    ],
)
async def test_power_state_errors_match_upstream(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    body: dict[str, Any],
    data: dict[str, str],
) -> None:
    response = await client.patch(
        f"{BASE}/rack/{rack.rack_id}/power", json={"siteId": str(rack.site_id)} | body, headers=auth
    )
    assert response.status_code == 400
    assert response.json()["data"] == data
    assert await count_tasks(services) == 0


@pytest.mark.parametrize(
    ("body", "data"),
    [
        ({"targets": ["bmc", ""]}, {"targets": "targets must not contain empty strings"}),
        ({"targets": ["flux"]}, {}),
        ({"targets": []}, {"targets": "must not be empty; omit it to update every component"}),
        ({"targets": ["bmc", "BMC"]}, {"targets": "target 'bmc' is listed twice"}),
        ({"version": ""}, {}),
        (
            {"operationCode": "flash"},
            {"operationCode": "must be one of [upgrade downgrade rollback]"},
        ),
    ],
)
async def test_firmware_body_errors(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    services: Services,
    rack: MadeRack,
    body: dict[str, Any],
    data: dict[str, str],
) -> None:
    response = await client.patch(
        f"{BASE}/rack/{rack.rack_id}/firmware",
        json={"siteId": str(rack.site_id), "version": "2.0.0"} | body,
        headers=auth,
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith("Failed to validate firmware update request data")
    for field, message in data.items():
        assert response.json()["data"][field] == message
    assert await count_tasks(services) == 0


async def test_firmware_targets_narrow_the_trays(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    body = {"siteId": str(rack.site_id), "version": "2.1", "targets": ["PSU", "nvos"]}
    [task_id] = await _ids(
        await client.patch(f"{BASE}/rack/{rack.rack_id}/firmware", json=body, headers=auth)
    )
    task = await load_task(services, task_id)
    assert sorted(task.targets) == ["NVLSwitch", "PowerShelf"]
    assert task.information == {"version": "2.1", "targets": ["psu", "nvos"]}
    assert (task.operation_type, task.operation_code) == ("FirmwareControl", "upgrade")
    assert task.description == "API firmware upgrade Rack to 2.1"

    # A compute tray has no power-supply firmware: refused, naming what it has.
    compute = rack.trays["Compute"][0]
    response = await client.patch(
        f"{BASE}/tray/{compute}/firmware",
        json={"siteId": str(rack.site_id), "version": "2.1", "targets": ["psu"]},
        headers=auth,
    )
    assert response.status_code == 400
    assert response.json()["data"] == {
        "targets": "none of the targeted trays (Compute) has these components; "
        "they have: bios, bmc, dpu"
    }


async def _firmware(
    client: httpx.AsyncClient, auth: dict[str, str], path: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"{BASE}{path}", json=body, headers=auth)


@pytest.mark.parametrize("code", ["downgrade", "rollback"])
async def test_downgrade_and_rollback_need_a_version(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack, code: str
) -> None:
    body = {"siteId": str(rack.site_id), "operationCode": code}
    response = await _firmware(client, auth, f"/rack/{rack.rack_id}/firmware", body)
    assert response.status_code == 400, response.text
    assert response.json()["data"] == {"version": "is required for downgrade and rollback"}
    assert await count_tasks(services) == 0


async def test_firmware_version_is_not_an_image_url(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    body = {"siteId": str(rack.site_id), "version": "https://fw.example/compute-2.1.0.fwpkg"}
    response = await _firmware(client, auth, f"/rack/{rack.rack_id}/firmware", body)
    assert response.status_code == 400, response.text
    assert response.json()["data"] == {
        "version": "must be a firmware version, not an image URL; map versions to image "
        "URIs in the site's redfish.firmwareCatalog"
    }
    assert await count_tasks(services) == 0


async def test_upgrade_without_a_version_and_no_catalog_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    rack = await make_site_with_rack(services, catalog=None)
    response = await _firmware(
        client, auth, f"/rack/{rack.rack_id}/firmware", {"siteId": str(rack.site_id)}
    )
    assert response.status_code == 400, response.text
    assert response.json()["data"] == {
        "version": "is required: the site's redfish.firmwareCatalog lists no version for "
        "Compute, NVLSwitch, PowerShelf to upgrade to"
    }
    assert await count_tasks(services) == 0


async def test_upgrade_without_a_version_takes_the_catalogs_highest_per_type(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    catalog = {
        "Compute": {
            "2.9.0": "https://fw.example/compute-2.9.0.fwpkg",
            "2.10.0": "https://fw.example/compute-2.10.0.fwpkg",
        },
        "*": {"1.0.0": "https://fw.example/any-1.0.0.bin"},
    }
    patched = await client.patch(
        f"{BASE}/site/{rack.site_id}",
        json={"redfish": {"firmwareCatalog": catalog}},
        headers=auth,
    )
    assert patched.status_code == 200, patched.text
    body = {"siteId": str(rack.site_id)}
    [task_id] = await _ids(await _firmware(client, auth, f"/rack/{rack.rack_id}/firmware", body))
    task = await load_task(services, task_id)
    assert task.information == {
        "version": {"Compute": "2.10.0", "NVLSwitch": "1.0.0", "PowerShelf": "1.0.0"}
    }
    assert task.description == (
        "API firmware upgrade Rack to Compute 2.10.0, NVLSwitch 1.0.0, PowerShelf 1.0.0"
    )

    # Without `*`, a type the catalog does not list cannot be upgraded without a version.
    del catalog["*"]
    await client.patch(
        f"{BASE}/site/{rack.site_id}", json={"redfish": {"firmwareCatalog": catalog}}, headers=auth
    )
    second = await add_rack(services, rack.site_id, "rack-02")
    response = await _firmware(client, auth, f"/rack/{second.rack_id}/firmware", body)
    assert response.status_code == 400
    assert response.json()["data"] == {
        "version": "is required: the site's redfish.firmwareCatalog lists no version for "
        "NVLSwitch, PowerShelf to upgrade to"
    }
    compute = second.trays["Compute"][0]
    [tray_task] = await _ids(await _firmware(client, auth, f"/tray/{compute}/firmware", body))
    assert (await load_task(services, tray_task)).information == {"version": {"Compute": "2.10.0"}}


async def test_bring_up_and_ingest(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    body = {"siteId": str(rack.site_id), "operationCode": "ingest"}
    [task_id] = await _ids(
        await client.post(f"{BASE}/rack/{rack.rack_id}/bringup", json=body, headers=auth)
    )
    task = await load_task(services, task_id)
    assert (task.operation_type, task.operation_code) == ("BringUp", "ingest")
    assert task.description == f"API ingest Rack {rack.rack_id}"
    assert len(_tray_ids(task)) == 35


async def test_unknown_and_malformed_ids(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    site = str(rack.site_id)
    cases = [
        (f"/rack/{uuid.uuid4()}/power", 404, "Rack not found"),
        ("/rack/nope/power", 400, "Invalid Rack ID specified in URL"),
        (f"/tray/{uuid.uuid4()}/power", 404, "Tray not found"),
        ("/tray/nope/power", 400, "Invalid Tray ID specified in URL"),
    ]
    for path, status, message in cases:
        response = await client.patch(
            BASE + path, json={"siteId": site, "state": "on"}, headers=auth
        )
        assert (response.status_code, response.json()["message"]) == (status, message), path
    # A rack of another site is not found either.
    other = await make_site_with_rack(services)
    response = await client.patch(
        f"{BASE}/rack/{other.rack_id}/power", json={"siteId": site, "state": "on"}, headers=auth
    )
    assert response.status_code == 404
    assert await count_tasks(services) == 0


async def test_site_guard(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    make_token: TokenFactory,
    services: Services,
    rack: MadeRack,
) -> None:
    path = f"{BASE}/rack/{rack.rack_id}/power"
    body = {"siteId": str(rack.site_id), "state": "on"}
    assert (await client.patch(path, json=body)).status_code == 401
    viewer = {"Authorization": f"Bearer {make_token(roles=['PROVIDER_VIEWER'])}"}
    assert (await client.patch(path, json=body, headers=viewer)).status_code == 403
    missing = await client.patch(path, json=body | {"siteId": str(uuid.uuid4())}, headers=auth)
    assert (missing.status_code, missing.json()["message"]) == (
        400,
        "Site specified in request does not exist",
    )
    dark = await make_site_with_rack(services, flow=False)
    response = await client.patch(
        f"{BASE}/rack/{dark.rack_id}/power",
        json={"siteId": str(dark.site_id), "state": "on"},
        headers=auth,
    )
    assert (response.status_code, response.json()["message"]) == (
        412,
        "Site does not have NICo Flow enabled",
    )
    foreign = await make_site_with_rack(services, org="other")
    response = await client.patch(
        f"{BASE}/rack/{foreign.rack_id}/power",
        json={"siteId": str(foreign.site_id), "state": "on"},
        headers=auth,
    )
    assert response.status_code == 403
    assert await count_tasks(services) == 0


async def test_pinned_rule_must_exist_and_fit(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    path = f"{BASE}/rack/{rack.rack_id}/power"
    body = {"siteId": str(rack.site_id), "state": "on", "ruleId": str(uuid.uuid4())}
    response = await client.patch(path, json=body, headers=auth)
    assert response.status_code == 400 and "ruleId" in response.json()["data"]

    rules = await client.get(
        f"{BASE}/task/rule",
        params={"siteId": str(rack.site_id), "operationType": "PowerControl"},
        headers=auth,
    )
    assert rules.status_code == 200, rules.text
    by_code = {r["operationCode"]: r["id"] for r in rules.json()}
    wrong = await client.patch(path, json=body | {"ruleId": by_code["power_off"]}, headers=auth)
    assert wrong.status_code == 400 and "ruleId" in wrong.json()["data"]
    assert await count_tasks(services) == 0

    [task_id] = await _ids(
        await client.patch(path, json=body | {"ruleId": by_code["power_on"]}, headers=auth)
    )
    task = await load_task(services, task_id)
    assert str(task.rule_id) == by_code["power_on"] and task.rule_source == "pinned"


async def test_a_form_body_is_told_to_send_json(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    response = await client.patch(
        f"{BASE}/rack/{rack.rack_id}/power",
        content=f'{{"siteId":"{rack.site_id}","state":"on"}}',
        headers=auth | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["data"] == {
        "body": "must be a JSON object sent with Content-Type: application/json"
    }
    assert await count_tasks(services) == 0


async def test_every_operation_records_who_asked_for_it(
    client: httpx.AsyncClient, services: Services, rack: MadeRack
) -> None:
    """Power, firmware and bring-up tasks carry the caller's token subject (history
    rows name it)."""
    from nico.auth.tokens import mint_dev_token
    from tests.conftest import DEV_KEY

    def as_(subject: str) -> dict[str, str]:
        token = mint_dev_token(DEV_KEY, "demo", ["PROVIDER_ADMIN"], subject=subject)
        return {"Authorization": f"Bearer {token}"}

    site = str(rack.site_id)
    calls = [
        ("alice", "patch", f"/rack/{rack.rack_id}/power", {"siteId": site, "state": "on"}),
        (
            "bob",
            "patch",
            f"/rack/{rack.rack_id}/firmware",
            {"siteId": site, "version": "2.0.0", "conflictStrategy": "queue"},
        ),
        (
            "carol",
            "post",
            f"/rack/{rack.rack_id}/bringup",
            {"siteId": site, "conflictStrategy": "queue"},
        ),
    ]
    for subject, method, path, body in calls:
        response = await client.request(method, f"{BASE}{path}", json=body, headers=as_(subject))
        [task_id] = await _ids(response)
        assert (await load_task(services, task_id)).created_by == subject
        shown = await client.get(
            f"{BASE}/task/{task_id}", params={"siteId": site}, headers=as_(subject)
        )
        assert shown.json()["createdBy"] == subject
        listed = await client.get(
            f"{BASE}/rack/{rack.rack_id}/task", params={"siteId": site}, headers=as_(subject)
        )
        assert {t["id"]: t.get("createdBy") for t in listed.json()}[task_id] == subject


async def test_ac_power_cycle_of_a_rack_targets_its_shelves_and_every_tray_behind_them(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    response = await client.patch(
        f"{BASE}/rack/{rack.rack_id}/power",
        json={"siteId": str(rack.site_id), "state": "ACPowerCycle"},
        headers=auth,
    )
    [task_id] = await _ids(response)
    task = await load_task(services, task_id)
    assert (task.operation_type, task.operation_code) == ("PowerControl", "ac_power_cycle")
    assert task.information == {"state": "ACPowerCycle"}
    assert task.description == "API AC power cycle Rack"
    assert {k: len(v) for k, v in task.targets.items()} == {
        "Compute": 18,
        "NVLSwitch": 9,
        "PowerShelf": 8,
    }
    assert task.rule_definition is not None
    assert [s["componentType"] for s in task.rule_definition["steps"]] == [
        "PowerShelf",
        "NVLSwitch",
        "Compute",
    ]


async def test_ac_power_cycle_of_one_shelf_covers_the_trays_it_feeds(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    shelf = rack.trays["PowerShelf"][0]
    response = await client.patch(
        f"{BASE}/tray/{shelf}/power",
        json={"siteId": str(rack.site_id), "state": "acpowercycle"},
        headers=auth,
    )
    [task_id] = await _ids(response)
    task = await load_task(services, task_id)
    assert task.information == {"state": "ACPowerCycle"}
    # Only the selected shelf is cycled, but every tray it feeds loses power: the task
    # covers them, so conflicts and the rule's checks see them.
    assert task.targets["PowerShelf"] == [str(shelf)]
    assert len(task.targets["Compute"]) == 18 and len(task.targets["NVLSwitch"]) == 9


async def test_ac_power_cycle_without_a_shelf_is_a_400_naming_the_trays(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    compute = rack.trays["Compute"][0]
    name = rack.tray_names[compute]
    response = await client.patch(
        f"{BASE}/tray/power",
        json={
            "siteId": str(rack.site_id),
            "state": "ACPowerCycle",
            "filter": {"ids": [str(compute)]},
        },
        headers=auth,
    )
    assert response.status_code == 400, response.text
    message = response.json()["data"]["state"]
    assert message == (
        f"ACPowerCycle: rack rack-01: no PowerShelf tray selected to cut AC ({name}); "
        "select the rack or its PowerShelf trays"
    )
    assert await count_tasks(services) == 0


def _fingerprint_before_pascal_case(path: str, body: dict[str, Any]) -> str:
    """How nico-flow fingerprinted a power request before PascalCase power states: the
    validated body (its `state` was lower case then), method and path, hashed."""
    canonical = json.dumps(
        {"method": "PATCH", "path": path, "body": body | {"state": body["state"].lower()}},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def test_an_idempotency_key_stored_before_pascal_case_states_still_replays(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services, rack: MadeRack
) -> None:
    """A client that sent `forceoff` with a key before the upgrade and retries after it
    gets its first task back, not a 409; another state with that key is still a 409."""
    path = f"{BASE}/rack/{rack.rack_id}/power"
    headers = auth | {"Idempotency-Key": "before-upgrade"}
    sent = {"siteId": str(rack.site_id), "state": "forceoff"}
    first = await _ids(await client.patch(path, json=sent, headers=headers))
    validated = PowerRequest.model_validate(sent).model_dump(mode="json")
    async with services.db.session() as session:
        row = (
            await session.execute(
                select(IdempotencyKey).where(IdempotencyKey.key == "before-upgrade")
            )
        ).scalar_one()
        assert row.fingerprint != _fingerprint_before_pascal_case(path, validated)
        row.fingerprint = _fingerprint_before_pascal_case(path, validated)  # as stored then

    for spelling in ("forceoff", "ForceOff", "FORCEOFF"):
        again = await client.patch(path, json=sent | {"state": spelling}, headers=headers)
        assert await _ids(again) == first, spelling
    other = await client.patch(path, json=sent | {"state": "ForceCycle"}, headers=headers)
    assert other.status_code == 409, other.text
    assert other.json()["data"] == {"Idempotency-Key": "before-upgrade"}
    assert await count_tasks(services) == 1
