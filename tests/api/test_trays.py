"""Trays: `GET /tray` filters with upstream's combination rules, `GET /tray/{id}`."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from nico.api.access import SITE_FOREIGN, SITE_INVALID
from nico.domain import component_type_names
from tests.conftest import TokenFactory
from tests.support.inventory import create_nvl72_rack, create_site

BASE = "/v2/org/demo/nico"
INVALID = "Failed to validate request data"


@pytest.fixture
async def inventory(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    """One site with two NVL72 racks, `rack-b` imported first."""
    site = await create_site(client, auth)
    rack_b = await create_nvl72_rack(client, auth, site["id"], name="rack-b")
    rack_a = await create_nvl72_rack(client, auth, site["id"], name="rack-a")
    return {"site": site, "a": rack_a, "b": rack_b}


async def trays(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: str, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    response = await client.get(
        f"{BASE}/tray", params={"siteId": site_id, "pageSize": 100, **params}, headers=auth
    )
    assert response.status_code == 200, response.text
    return response.json(), json.loads(response.headers["X-Pagination"])["total"]


async def test_default_order_is_physical_rack_by_rack(
    client: httpx.AsyncClient, auth: dict[str, str], inventory: dict[str, Any]
) -> None:
    listed, total = await trays(client, auth, inventory["site"]["id"])
    assert total == 70
    expected = [c["id"] for c in inventory["a"]["components"]] + [
        c["id"] for c in inventory["b"]["components"]
    ]
    assert [t["id"] for t in listed] == expected
    first = listed[0]
    assert first["rackName"] == "rack-a"
    assert first["position"] == {"slotId": 1, "trayIdx": 0, "hostId": 0}
    assert first["type"] == "PowerShelf"
    assert first["powerState"] == "Unknown"
    assert first["bmcs"][0]["type"] == "BmcTypeHost"


async def test_filters_and_totals(
    client: httpx.AsyncClient, auth: dict[str, str], inventory: dict[str, Any]
) -> None:
    site_id = inventory["site"]["id"]
    rack_a = inventory["a"]
    by_rack_id, total = await trays(client, auth, site_id, rackId=rack_a["id"])
    assert total == 35 and {t["rackId"] for t in by_rack_id} == {rack_a["id"]}
    by_rack_name, total = await trays(client, auth, site_id, rackName="rack-b")
    assert total == 35 and {t["rackName"] for t in by_rack_name} == {"rack-b"}
    switches, total = await trays(client, auth, site_id, type="nvswitch")
    assert total == 18 and {t["type"] for t in switches} == {"NVLSwitch"}
    shelves, total = await trays(client, auth, site_id, type="PowerShelf", rackName="rack-a")
    assert total == 8 and [t["name"] for t in shelves][:2] == ["powershelf-01", "powershelf-02"]
    picked = [rack_a["components"][3]["id"], inventory["b"]["components"][20]["id"]]
    by_ids, total = await trays(client, auth, site_id, id=picked)
    assert total == 2 and sorted(t["id"] for t in by_ids) == sorted(picked)
    by_component, total = await trays(
        client,
        auth,
        site_id,
        type="Compute",
        componentId=["rack-a/compute-07", "rack-b/compute-07"],
    )
    assert total == 2 and {t["name"] for t in by_component} == {"compute-07"}
    in_slot, total = await trays(client, auth, site_id, rackName="rack-a", slotId=15)
    assert total == 1 and in_slot[0]["name"] == "nvswitch-01"
    nowhere, total = await trays(client, auth, site_id, rackName="rack-z")
    assert (nowhere, total) == ([], 0)


async def test_order_by_type_then_physical(
    client: httpx.AsyncClient, auth: dict[str, str], inventory: dict[str, Any]
) -> None:
    site_id = inventory["site"]["id"]
    listed, _ = await trays(client, auth, site_id, orderBy="TYPE_DESC", rackName="rack-a")
    assert [t["type"] for t in listed] == ["PowerShelf"] * 8 + ["NVLSwitch"] * 9 + ["Compute"] * 18
    assert [t["name"] for t in listed[:3]] == ["powershelf-01", "powershelf-02", "powershelf-03"]
    by_name, _ = await trays(client, auth, site_id, orderBy="NAME_ASC", type="Compute")
    assert [(t["name"], t["rackName"]) for t in by_name[:3]] == [
        ("compute-01", "rack-a"),
        ("compute-01", "rack-b"),
        ("compute-02", "rack-a"),
    ]


@pytest.mark.parametrize(
    ("params", "data"),
    [
        ({"rackId": "rack-a"}, {"rackId": "must be a valid UUID"}),
        ({"type": "GPU"}, {"type": f"must be one of {component_type_names()}"}),
        ({"id": ["nope"]}, {"id": "must be a valid UUID: nope"}),
        (
            {"rackId": str(uuid.uuid4()), "rackName": "rack-a"},
            {"rackId": "rackId and rackName are mutually exclusive"},
        ),
        (
            {"rackName": "rack-a", "id": [str(uuid.uuid4())]},
            {"rackId": "rackId/rackName cannot be combined with id/componentId"},
        ),
        (
            {"rackName": "rack-a", "type": "Compute", "componentId": ["x"]},
            {"rackId": "rackId/rackName cannot be combined with id/componentId"},
        ),
        ({"componentId": ["x"]}, {"componentId": "type is required when componentId is provided"}),
        ({"rackName": "rack-a", "slotId": -1}, {"slotId": "must be >= 0"}),
        ({"rackName": "rack-a", "slotId": 2**31}, {"slotId": "must be <= 2147483647"}),
        ({"slotId": 3}, {"slotId": "rackId or rackName is required when slotId is set"}),
    ],
)
async def test_filter_rules_are_400_with_the_field(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    inventory: dict[str, Any],
    params: dict[str, Any],
    data: dict[str, str],
) -> None:
    response = await client.get(
        f"{BASE}/tray", params={"siteId": inventory["site"]["id"], **params}, headers=auth
    )
    assert response.status_code == 400
    body = response.json()
    assert body["data"] == data
    field, message = next(iter(data.items()))
    assert body["message"] == f"{INVALID}: {field}: {message}"


async def test_every_filter_problem_is_reported_at_once(
    client: httpx.AsyncClient, auth: dict[str, str], inventory: dict[str, Any]
) -> None:
    params = {"siteId": inventory["site"]["id"], "rackId": "x", "type": "GPU", "slotId": -2}
    response = await client.get(f"{BASE}/tray", params=params, headers=auth)
    assert response.status_code == 400
    assert set(response.json()["data"]) == {"rackId", "type", "slotId"}


async def test_slot_that_is_not_a_number_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], inventory: dict[str, Any]
) -> None:
    params = {"siteId": inventory["site"]["id"], "rackName": "rack-a", "slotId": "top"}
    response = await client.get(f"{BASE}/tray", params=params, headers=auth)
    assert response.status_code == 400
    assert "slotId" in response.json()["data"]


async def test_slot_past_the_column_is_400_on_every_database(
    any_db_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """The largest slot the column holds finds nothing; 10**20 (past any database
    integer) is a 400 naming slotId, not a 500."""
    site = await create_site(any_db_client, auth)
    await create_nvl72_rack(any_db_client, auth, site["id"], name="rack-a")
    params = {"siteId": site["id"], "rackName": "rack-a"}
    largest = await any_db_client.get(
        f"{BASE}/tray", params={**params, "slotId": 2**31 - 1}, headers=auth
    )
    assert (largest.status_code, largest.json()) == (200, [])
    response = await any_db_client.get(
        f"{BASE}/tray", params={**params, "slotId": 10**20}, headers=auth
    )
    assert response.status_code == 400, response.text
    assert response.json()["data"] == {"slotId": "must be <= 2147483647"}


async def test_malformed_site_id_is_400_not_500(
    client: httpx.AsyncClient, auth: dict[str, str], inventory: dict[str, Any]
) -> None:
    for path in ("/tray", f"/tray/{inventory['a']['components'][0]['id']}"):
        response = await client.get(f"{BASE}{path}", params={"siteId": "site-1"}, headers=auth)
        assert (response.status_code, response.json()["message"]) == (400, SITE_INVALID)


async def test_guard_runs_before_filter_validation(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    inventory: dict[str, Any],
    make_token: TokenFactory,
) -> None:
    other = {"Authorization": f"Bearer {make_token(org='other')}"}
    theirs = await create_site(client, other, org="other")
    params = {"siteId": theirs["id"], "rackId": "not-a-uuid"}
    response = await client.get(f"{BASE}/tray", params=params, headers=auth)
    assert (response.status_code, response.json()["message"]) == (403, SITE_FOREIGN)


async def test_get_tray(
    client: httpx.AsyncClient, auth: dict[str, str], inventory: dict[str, Any]
) -> None:
    site_id = inventory["site"]["id"]
    listed, _ = await trays(client, auth, site_id, rackName="rack-b", slotId=20)
    response = await client.get(
        f"{BASE}/tray/{listed[0]['id']}", params={"siteId": site_id}, headers=auth
    )
    assert response.status_code == 200
    assert response.json() == listed[0]
    assert response.json()["backend"] == "simulator"


async def test_get_tray_errors(
    client: httpx.AsyncClient, auth: dict[str, str], inventory: dict[str, Any]
) -> None:
    other_site = await create_site(client, auth, name="elsewhere")
    theirs = await create_nvl72_rack(client, auth, other_site["id"])
    params = {"siteId": inventory["site"]["id"]}
    cases = {
        "tray-1": (400, "Invalid Tray ID in URL"),
        str(uuid.uuid4()): (404, "Tray not found"),
        theirs["components"][0]["id"]: (404, "Tray not found"),
    }
    for tray_id, expected in cases.items():
        response = await client.get(f"{BASE}/tray/{tray_id}", params=params, headers=auth)
        assert (response.status_code, response.json()["message"]) == expected
    unknown = await client.get(
        f"{BASE}/tray/{theirs['components'][0]['id']}",
        params={"siteId": other_site["id"], "verbose": "1"},
        headers=auth,
    )
    assert unknown.json()["message"] == "Unknown query parameter specified in request: verbose"
