"""/openapi.json describes what the service really answers."""

import uuid
from typing import Any

import httpx


async def test_openapi_has_nico_errors_and_no_422(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "NICoAPIError" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            error = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/NICoAPIError"}
            if path.startswith("/v2/org/"):
                assert operation["security"] == [{"JWTBearerToken": []}]


async def test_seed_paths_are_served(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "get" in paths["/v2/org/{org}/nico/tray/{id}/task"]
    assert "get" in paths["/v2/org/{org}/nico/task/rule/{id}"]


async def test_fault_request_offers_only_the_types_a_fault_can_target(
    client: httpx.AsyncClient,
) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    field = schemas["FaultCreateRequest"]["properties"]["componentType"]
    offered = [choice.get("enum") for choice in field["anyOf"] if "enum" in choice]
    assert offered == [["Compute", "NVLSwitch", "PowerShelf"]]


async def test_every_get_or_delete_documenting_site_id_required_refuses_to_run_without_it(
    client: httpx.AsyncClient, make_token: Any
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    headers = {"Authorization": f"Bearer {make_token()}"}
    # The org's provider exists (the site checks come after it, in upstream's order).
    await client.get("/v2/org/demo/nico/infrastructure-provider/current", headers=headers)
    checked = []
    for path, operations in paths.items():
        for method in ("get", "delete"):
            operation = operations.get(method) or {}
            site = [p for p in operation.get("parameters", []) if p["name"] == "siteId"]
            if not site:
                continue
            assert site[0]["required"] is True, (method, path)
            assert site[0]["schema"]["format"] == "uuid", (method, path)
            url = path.replace("{org}", "demo").replace("{id}", str(uuid.uuid4()))
            url = url.replace("{operationType}", "PowerControl")
            url = url.replace("{operationCode}", "power_on")
            response = await client.request(method, url, headers=headers)
            assert response.status_code == 400, (method, path, response.text)
            assert "siteId" in response.json()["message"], (method, path)
            checked.append(method)
    # racks, trays, rules, tasks, rack/tray task lists, faults; rule and fault deletes
    assert checked.count("get") >= 8 and checked.count("delete") >= 3


async def test_timestamps_are_documented_as_date_time(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]

    def formats(schema: dict[str, Any]) -> set[str | None]:
        choices = schema.get("anyOf", [schema])
        return {c.get("format") for c in choices if c.get("type") == "string"}

    for model, field in [("Task", "created"), ("Task", "started"), ("OperationRule", "updated")]:
        assert formats(schemas[model]["properties"][field]) == {"date-time"}, (model, field)
