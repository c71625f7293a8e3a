"""/openapi.json describes what the service really answers."""

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
