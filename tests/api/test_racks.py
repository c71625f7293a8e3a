"""Racks: import with trays and BMCs, uniqueness, write-only credentials, list, get, delete."""

from __future__ import annotations

import copy
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from nico.domain import TaskStatus
from nico.services import Services
from nico.store.models import Bmc, Task
from tests.support.inventory import create_nvl72_rack, create_site, nvl72_body

BASE = "/v2/org/demo/nico"
PASSWORD = "Pa55-w0rd-that-must-never-leak"

Body = dict[str, Any]


@pytest.fixture
async def site(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, Any]:
    return await create_site(client, auth, name="main")


async def inventory_counts(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: str
) -> tuple[int, int]:
    """(racks, trays) the site holds, read through the API."""
    params = {"siteId": site_id, "pageSize": 1}
    racks = await client.get(f"{BASE}/rack", params=params, headers=auth)
    trays = await client.get(f"{BASE}/tray", params=params, headers=auth)
    assert racks.status_code == trays.status_code == 200
    return (
        int(racks.headers["X-Pagination"].split('"total":')[1].split(",")[0]),
        int(trays.headers["X-Pagination"].split('"total":')[1].split(",")[0]),
    )


async def test_import_answers_the_rack_with_its_trays(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any]
) -> None:
    response = await client.post(f"{BASE}/rack", json=nvl72_body(site["id"]), headers=auth)
    assert response.status_code == 201
    rack = response.json()
    assert rack["name"] == "rack-01"
    assert rack["siteId"] == site["id"]
    assert rack["backend"] == "simulator"
    assert rack["location"]["position"] == "rack-01"
    components = rack["components"]
    assert Counter(c["type"] for c in components) == {
        "Compute": 18,
        "NVLSwitch": 9,
        "PowerShelf": 8,
    }
    assert [c["slotId"] for c in components] == list(range(1, 36))
    assert components[0]["name"] == "powershelf-01"
    assert all(c["rackId"] == rack["id"] for c in components)
    bmc = components[0]["bmcs"][0]
    assert set(bmc) == {"type", "macAddress", "ipAddress", "credentialsSet"}
    assert bmc["type"] == "BmcTypeHost"
    assert bmc["credentialsSet"] is False
    assert await inventory_counts(client, auth, site["id"]) == (1, 35)


async def test_type_aliases_are_accepted_and_answered_with_wire_names(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any]
) -> None:
    body = nvl72_body(site["id"])
    spellings = ["nvswitch", "COMPUTE", "power_shelf", "NVLSwitch", "PowerShelf"]
    body["components"] = body["components"][: len(spellings)]
    for component, spelling in zip(body["components"], spellings, strict=True):
        component["type"] = spelling
    response = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 201
    assert [c["type"] for c in response.json()["components"]] == [
        "NVLSwitch",
        "Compute",
        "PowerShelf",
        "NVLSwitch",
        "PowerShelf",
    ]


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "10.1.2.3:8443", "bmc-7.lab.example", "[fd00::7]:443", "http://127.0.0.1:8000"],
)
async def test_bmc_address_forms_the_redfish_backend_reaches(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any], address: str
) -> None:
    body = nvl72_body(site["id"])
    body["components"] = body["components"][:1]
    body["components"][0]["bmcs"][0]["ipAddress"] = address
    response = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["components"][0]["bmcs"][0]["ipAddress"] == address


@pytest.mark.parametrize(
    ("address", "port"),
    [("10.0.0.1:8443", 443), ("https://bmc-7.lab.example:8443", 8000), ("[fd00::7]:443", 8443)],
)
async def test_a_port_that_disagrees_with_the_address_is_400_and_writes_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site: dict[str, Any],
    address: str,
    port: int,
) -> None:
    """The Redfish client would silently use `port` and ignore the address's port."""
    body = nvl72_body(site["id"])
    body["components"][0]["bmcs"][0].update(ipAddress=address, port=port)
    response = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 400, response.text
    written = address.rsplit(":", 1)[1]
    problem = (
        f"{port} disagrees with port {written} in ipAddress: give the port once, "
        "or the same port in both"
    )
    assert response.json()["data"] == {"components[0].bmcs[0].port": problem}
    assert "components[0].bmcs[0].port" in response.json()["message"]
    assert await inventory_counts(client, auth, site["id"]) == (0, 0)


@pytest.mark.parametrize(("address", "port"), [("10.0.0.1:8443", 8443), ("10.0.0.1", 8443)])
async def test_a_port_the_address_agrees_with_is_stored(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site: dict[str, Any],
    address: str,
    port: int,
) -> None:
    body = nvl72_body(site["id"])
    body["components"][0]["bmcs"][0].update(ipAddress=address, port=port)
    response = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 201, response.text
    bmc = response.json()["components"][0]["bmcs"][0]
    assert (bmc["ipAddress"], bmc["port"]) == (address, port)


async def test_bmc_details_are_normalized_and_credentials_write_only(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any], services: Services
) -> None:
    body = nvl72_body(site["id"])
    body["components"] = body["components"][:2]
    body["components"][0]["bmcs"] = [
        {
            "type": "host",
            "macAddress": "aa-bb-cc-00-11-22",
            "ipAddress": "bmc-01.lab.example",
            "port": 8443,
            "resourceId": "System.Embedded.1",
            "username": "root",
            "password": PASSWORD,
        }
    ]
    response = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 201
    bmc = response.json()["components"][0]["bmcs"][0]
    assert bmc == {
        "type": "BmcTypeHost",
        "macAddress": "AA:BB:CC:00:11:22",
        "ipAddress": "bmc-01.lab.example",
        "port": 8443,
        "resourceId": "System.Embedded.1",
        "credentialsSet": True,
    }
    async with services.db.session() as session:
        row = (await session.execute(select(Bmc).where(Bmc.username == "root"))).scalar_one()
    assert row.password_encrypted is not None
    assert PASSWORD not in row.password_encrypted
    assert services.secrets.decrypt(row.password_encrypted) == PASSWORD


async def test_passwords_appear_in_no_response_and_no_log(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    async def record(method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = await client.request(method, url, headers=auth, **kwargs)
        texts.append(response.text + str(response.headers))
        return response

    body = nvl72_body(site["id"], password=PASSWORD)
    created = await record("POST", f"{BASE}/rack", json=body)
    assert created.status_code == 201
    rack_id = created.json()["id"]
    tray_id = created.json()["components"][0]["id"]
    params = {"siteId": site["id"]}
    await record("GET", f"{BASE}/rack", params={**params, "includeComponents": "true"})
    await record("GET", f"{BASE}/rack/{rack_id}", params={**params, "includeComponents": "true"})
    await record("GET", f"{BASE}/tray", params={**params, "pageSize": "100"})
    await record("GET", f"{BASE}/tray/{tray_id}", params=params)
    duplicate = await record("POST", f"{BASE}/rack", json=body)
    assert duplicate.status_code == 409
    invalid = copy.deepcopy(body)
    invalid["name"] = "rack-02"
    invalid["components"][0]["bmcs"][0]["password"] = PASSWORD * 100
    invalid["components"][1]["bmcs"][0]["password"] = 12345
    assert (await record("POST", f"{BASE}/rack", json=invalid)).status_code == 400
    assert len(texts) == 7
    assert all(PASSWORD not in text for text in texts)
    assert PASSWORD not in caplog.text
    assert "credentialsSet" in texts[1]


async def test_serial_numbers_are_unique_per_manufacturer(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any]
) -> None:
    first = await create_nvl72_rack(client, auth, site["id"])
    taken = first["components"][5]
    body = nvl72_body(site["id"], "rack-02")
    body["components"][9]["serialNumber"] = taken["serialNumber"]
    response = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 409
    assert taken["serialNumber"] in response.json()["message"]
    assert response.json()["data"] == {"components[9].serialNumber": "already exists"}
    assert await inventory_counts(client, auth, site["id"]) == (1, 35)
    # The same serial from another manufacturer is a different tray.
    body["components"][9]["manufacturer"] = "Foxconn"
    again = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert again.status_code == 201
    assert await inventory_counts(client, auth, site["id"]) == (2, 70)


async def test_rack_name_is_unique_per_site(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any]
) -> None:
    await create_nvl72_rack(client, auth, site["id"], name="r1")
    response = await client.post(f"{BASE}/rack", json=nvl72_body(site["id"], "r1"), headers=auth)
    assert response.status_code == 409
    assert response.json()["message"] == "Rack with name r1 already exists in Site"
    other = await create_site(client, auth, name="second")
    await create_nvl72_rack(client, auth, other["id"], name="r1")


async def test_registered_bmc_mac_is_409_in_any_spelling(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any]
) -> None:
    first = await create_nvl72_rack(client, auth, site["id"])
    mac = first["components"][3]["bmcs"][0]["macAddress"]
    body = nvl72_body(site["id"], "rack-02")
    body["components"][0]["bmcs"][0]["macAddress"] = mac.replace(":", "").lower()
    response = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 409
    assert mac in response.json()["message"]
    assert "components[0].bmcs[0].macAddress" in response.json()["data"]
    assert await inventory_counts(client, auth, site["id"]) == (1, 35)


def set_at(path: list[str | int], value: Any) -> Callable[[Body], None]:
    def mutate(body: Body) -> None:
        node: Any = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def drop(path: list[str | int]) -> Callable[[Body], None]:
    def mutate(body: Body) -> None:
        node: Any = body
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def copy_from(source: list[str | int], target: list[str | int]) -> Callable[[Body], None]:
    def mutate(body: Body) -> None:
        node: Any = body
        for key in source:
            node = node[key]
        set_at(target, copy.deepcopy(node))(body)

    return mutate


def all_redfish_without_ip(body: Body) -> None:
    body["backend"] = "redfish"
    for bmc in body["components"][0]["bmcs"]:
        del bmc["ipAddress"]


INVALID_BODIES: list[tuple[str, Callable[[Body], None], str]] = [
    ("name missing", drop(["name"]), "name"),
    ("name blank", set_at(["name"], "  "), "name"),
    ("unknown rack field", set_at(["colour"], "green"), "colour"),
    ("unknown location field", set_at(["location", "floor"], "2"), "location.floor"),
    ("bad backend", set_at(["backend"], "ipmi"), "backend"),
    ("components not a list", set_at(["components"], {"a": 1}), "components"),
    ("unknown type", set_at(["components", 0, "type"], "GPU"), "components[0].type"),
    ("type missing", drop(["components", 2, "type"]), "components[2].type"),
    ("tray name blank", set_at(["components", 0, "name"], ""), "components[0].name"),
    ("serial missing", drop(["components", 1, "serialNumber"]), "components[1].serialNumber"),
    ("serial blank", set_at(["components", 1, "serialNumber"], " "), "components[1].serialNumber"),
    (
        "negative slot",
        set_at(["components", 0, "position", "slotId"], -1),
        "components[0].position.slotId",
    ),
    (
        "slot not a number",
        set_at(["components", 0, "position", "slotId"], "top"),
        "components[0].position.slotId",
    ),
    ("tray backend", set_at(["components", 4, "backend"], "ssh"), "components[4].backend"),
    (
        "bad MAC",
        set_at(["components", 0, "bmcs", 0, "macAddress"], "zz:zz"),
        "components[0].bmcs[0].macAddress",
    ),
    (
        "address with credentials",
        set_at(["components", 0, "bmcs", 0, "ipAddress"], "https://root:calvin@10.0.0.5"),
        "components[0].bmcs[0].ipAddress",
    ),
    (
        "address with a path",
        set_at(["components", 0, "bmcs", 0, "ipAddress"], "https://10.0.0.5/redfish/v1"),
        "components[0].bmcs[0].ipAddress",
    ),
    (
        "bad address",
        set_at(["components", 0, "bmcs", 0, "ipAddress"], "not an address!"),
        "components[0].bmcs[0].ipAddress",
    ),
    ("bad port", set_at(["components", 0, "bmcs", 0, "port"], 70000), "components[0].bmcs[0].port"),
    (
        "bad BMC type",
        set_at(["components", 0, "bmcs", 0, "type"], "BmcTypeWeird"),
        "components[0].bmcs[0].type",
    ),
    (
        "password without username",
        set_at(["components", 0, "bmcs", 0, "password"], "secret"),
        "components[0].bmcs[0].username",
    ),
    (
        "duplicate tray name",
        copy_from(["components", 0, "name"], ["components", 1, "name"]),
        "components[1].name",
    ),
    (
        "duplicate serial",
        copy_from(["components", 0, "serialNumber"], ["components", 3, "serialNumber"]),
        "components[3].serialNumber",
    ),
    (
        "duplicate position",
        copy_from(["components", 0, "position"], ["components", 2, "position"]),
        "components[2].position",
    ),
    (
        "duplicate MAC",
        copy_from(
            ["components", 0, "bmcs", 0, "macAddress"], ["components", 5, "bmcs", 0, "macAddress"]
        ),
        "components[5].bmcs[0].macAddress",
    ),
    ("redfish without BMC address", all_redfish_without_ip, "components[0].bmcs"),
]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [(m, f) for _, m, f in INVALID_BODIES],
    ids=[i for i, _, _ in INVALID_BODIES],
)
async def test_invalid_import_is_400_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site: dict[str, Any],
    mutate: Callable[[Body], None],
    field: str,
) -> None:
    body = nvl72_body(site["id"])
    mutate(body)
    response = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["source"] == "nico"
    assert field in error["data"], error
    assert field in error["message"]
    assert await inventory_counts(client, auth, site["id"]) == (0, 0)


def host_of(length: int) -> str:
    """A valid host name of exactly `length` characters (labels of at most 63)."""
    labels, left = [], length
    while left > 64:
        labels.append("h" * 63)
        left -= 64
    return ".".join([*labels, "h" * left])


NUL = "must not contain NUL characters (\\u0000)"
TOO_LONG = "String should have at most 256 characters"
# What PostgreSQL cannot store (a NUL in text; more than a column's length) and SQLite
# silently took: each a 400 naming the field on both databases, nothing written.
UNSTORABLE_BODIES: list[tuple[str, Callable[[Body], None], dict[str, str]]] = [
    ("NUL in the rack name", set_at(["name"], "r\x00x"), {"name": NUL}),
    (
        "NUL in a location",
        set_at(["location", "room"], "hall\x00a"),
        {"location.room": NUL},
    ),
    (
        "NUL in a tray serial",
        set_at(["components", 3, "serialNumber"], "S\x00N"),
        {"components[3].serialNumber": NUL},
    ),
    (
        "NUL in a BMC username",
        set_at(["components", 0, "bmcs", 0, "username"], "root\x00"),
        {"components[0].bmcs[0].username": NUL},
    ),
    (
        "NUL in a BMC password",
        lambda body: body["components"][0]["bmcs"][0].update(username="root", password="p\x00w"),
        {"components[0].bmcs[0].password": NUL},
    ),
    (
        "BMC address past its column",
        set_at(["components", 0, "bmcs", 0, "ipAddress"], f"https://{host_of(243)}:65535"),
        {"components[0].bmcs[0].ipAddress": TOO_LONG},
    ),
]


@pytest.mark.parametrize(
    ("mutate", "data"),
    [(m, d) for _, m, d in UNSTORABLE_BODIES],
    ids=[i for i, _, _ in UNSTORABLE_BODIES],
)
async def test_values_the_database_cannot_store_are_400_on_every_database(
    any_db_client: httpx.AsyncClient,
    auth: dict[str, str],
    mutate: Callable[[Body], None],
    data: dict[str, str],
) -> None:
    site = await create_site(any_db_client, auth)
    body = nvl72_body(site["id"])
    clean = copy.deepcopy(body)
    mutate(body)
    response = await any_db_client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["data"] == data
    field, problem = next(iter(data.items()))
    assert response.json()["message"] == f"Failed to validate request data: {field}: {problem}"
    assert await inventory_counts(any_db_client, auth, site["id"]) == (0, 0)
    imported = await any_db_client.post(f"{BASE}/rack", json=clean, headers=auth)
    assert imported.status_code == 201, imported.text


async def test_a_bmc_address_as_long_as_its_column_is_stored_on_every_database(
    any_db_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    site = await create_site(any_db_client, auth)
    address = f"https://{host_of(242)}:65535"
    assert len(address) == 256
    body = nvl72_body(site["id"])
    body["components"][0]["bmcs"][0]["ipAddress"] = address
    response = await any_db_client.post(f"{BASE}/rack", json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["components"][0]["bmcs"][0]["ipAddress"] == address


async def test_a_nul_in_a_query_value_is_400_naming_it_on_every_database(
    any_db_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    site = await create_site(any_db_client, auth)
    response = await any_db_client.get(
        f"{BASE}/rack", params={"siteId": site["id"], "name": "rack\x0001"}, headers=auth
    )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "source": "nico",
        "message": "Invalid value specified for `name` query param",
        "data": {"name": NUL},
    }


async def test_list_filters_orders_and_embeds(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any]
) -> None:
    models = {"r-b": "GB300 NVL72", "r-a": "GB200 NVL72", "r-c": "GB200 NVL36"}
    for name, model in models.items():
        body = nvl72_body(site["id"], name)
        body["model"] = model
        body["manufacturer"] = "Wistron" if name == "r-c" else "NVIDIA"
        body["components"] = body["components"][:3]
        assert (await client.post(f"{BASE}/rack", json=body, headers=auth)).status_code == 201

    async def names(**params: Any) -> list[str]:
        response = await client.get(
            f"{BASE}/rack", params={"siteId": site["id"], **params}, headers=auth
        )
        assert response.status_code == 200, response.text
        return [r["name"] for r in response.json()]

    assert await names() == ["r-a", "r-b", "r-c"]
    assert await names(name=["r-c", "r-a", "nope"]) == ["r-a", "r-c"]
    assert await names(manufacturer="NVIDIA") == ["r-a", "r-b"]
    assert await names(manufacturer="NVIDIA", name="r-c") == []
    assert await names(orderBy="MODEL_DESC") == ["r-b", "r-a", "r-c"]
    assert await names(orderBy="MANUFACTURER_DESC") == ["r-c", "r-a", "r-b"]
    plain = await client.get(f"{BASE}/rack", params={"siteId": site["id"]}, headers=auth)
    assert all("components" not in r for r in plain.json())
    embedded = await client.get(
        f"{BASE}/rack", params={"siteId": site["id"], "includeComponents": "true"}, headers=auth
    )
    assert [len(r["components"]) for r in embedded.json()] == [3, 3, 3]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"orderBy": "SERIAL_ASC"}, "orderBy"),
        ({"orderBy": "name_asc"}, "orderBy"),
        ({"includeComponents": "perhaps"}, "includeComponents"),
    ],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site: dict[str, Any],
    params: dict[str, str],
    field: str,
) -> None:
    response = await client.get(
        f"{BASE}/rack", params={"siteId": site["id"], **params}, headers=auth
    )
    assert response.status_code == 400
    assert field in response.json()["data"]


async def test_get_rack(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any]
) -> None:
    rack = await create_nvl72_rack(client, auth, site["id"])
    params = {"siteId": site["id"]}
    plain = await client.get(f"{BASE}/rack/{rack['id']}", params=params, headers=auth)
    assert plain.status_code == 200
    assert plain.json() == {k: v for k, v in rack.items() if k != "components"}
    full = await client.get(
        f"{BASE}/rack/{rack['id']}", params={**params, "includeComponents": "1"}, headers=auth
    )
    assert full.json() == rack


async def test_get_rack_errors(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any]
) -> None:
    other_site = await create_site(client, auth, name="other")
    theirs = await create_nvl72_rack(client, auth, other_site["id"])
    params = {"siteId": site["id"]}
    cases = {
        "not-a-uuid": (400, "Invalid Rack ID specified in URL"),
        str(uuid.uuid4()): (404, "Rack not found"),
        theirs["id"]: (404, "Rack not found"),
    }
    for rack_id, expected in cases.items():
        for method in ("GET", "DELETE"):
            response = await client.request(
                method, f"{BASE}/rack/{rack_id}", params=params, headers=auth
            )
            assert (response.status_code, response.json()["message"]) == expected
    missing_site = await client.get(f"{BASE}/rack/{theirs['id']}", headers=auth)
    assert missing_site.json()["message"] == "siteId query parameter is required"
    assert await inventory_counts(client, auth, other_site["id"]) == (1, 35)


async def add_task(services: Services, site_id: str, rack_id: str, status: TaskStatus) -> str:
    task_id = uuid.uuid4()
    async with services.db.session() as session:
        session.add(
            Task(
                id=task_id,
                site_id=uuid.UUID(site_id),
                rack_id=uuid.UUID(rack_id),
                operation_type="PowerControl",
                operation_code="power_on",
                status=status.value,
            )
        )
    return str(task_id)


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.WAITING, TaskStatus.RUNNING])
async def test_rack_with_an_active_task_cannot_be_deleted(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site: dict[str, Any],
    services: Services,
    status: TaskStatus,
) -> None:
    rack = await create_nvl72_rack(client, auth, site["id"])
    task_id = await add_task(services, site["id"], rack["id"], status)
    response = await client.delete(
        f"{BASE}/rack/{rack['id']}", params={"siteId": site["id"]}, headers=auth
    )
    assert response.status_code == 409
    assert "1 active task" in response.json()["message"]
    assert response.json()["data"] == {"taskIds": task_id}
    assert await inventory_counts(client, auth, site["id"]) == (1, 35)


async def test_delete_rack_removes_its_trays_and_keeps_task_history(
    client: httpx.AsyncClient, auth: dict[str, str], site: dict[str, Any], services: Services
) -> None:
    body = nvl72_body(site["id"], "doomed")
    doomed = (await client.post(f"{BASE}/rack", json=body, headers=auth)).json()
    await create_nvl72_rack(client, auth, site["id"], name="kept")
    finished = await add_task(services, site["id"], doomed["id"], TaskStatus.SUCCEEDED)
    await add_task(services, site["id"], doomed["id"], TaskStatus.TERMINATED)
    response = await client.delete(
        f"{BASE}/rack/{doomed['id']}", params={"siteId": site["id"]}, headers=auth
    )
    assert response.status_code == 204
    assert await inventory_counts(client, auth, site["id"]) == (1, 35)
    tray = await client.get(
        f"{BASE}/tray/{doomed['components'][0]['id']}", params={"siteId": site["id"]}, headers=auth
    )
    assert tray.status_code == 404
    async with services.db.session() as session:
        assert await session.get(Task, uuid.UUID(finished)) is not None
    # Its name, serial numbers and MACs are free again.
    again = await client.post(f"{BASE}/rack", json=body, headers=auth)
    assert again.status_code == 201
