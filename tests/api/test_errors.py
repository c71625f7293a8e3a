"""Every error path answers the NICo error envelope."""

import httpx

BASE = "/v2/org/demo/nico"


async def test_unknown_path_is_nico_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {
        "source": "nico",
        "message": "The requested path was not found",
        "data": None,
    }


async def test_wrong_method_is_nico_405(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.delete(f"{BASE}/infrastructure-provider/current", headers=auth)
    assert response.status_code == 405
    assert response.json()["source"] == "nico"


async def test_missing_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/infrastructure-provider/current")
    assert response.status_code == 401
    assert response.json()["message"] == "Request is missing authorization header"


async def test_unknown_query_parameter_is_400(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get(
        f"{BASE}/infrastructure-provider/current", params={"bogus": "1"}, headers=auth
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Unknown query parameter specified in request: bogus"


async def test_provider_is_created_once(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    first = await client.get(f"{BASE}/infrastructure-provider/current", headers=auth)
    second = await client.get(f"{BASE}/infrastructure-provider/current", headers=auth)
    assert first.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["org"] == "demo"
    assert first.json()["created"].endswith("Z")


async def test_one_wording_for_the_same_mistake_on_every_route(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Routes with their own summary and routes without word field problems alike."""
    site = await client.post(f"{BASE}/site", json={"name": "s1"}, headers=auth)
    site_id = site.json()["id"]
    generic = await client.post(
        f"{BASE}/site", json={"name": "s2", "description": 5, "capabilities": [1]}, headers=auth
    )
    summarized = await client.patch(
        f"{BASE}/rack/power",
        json={"siteId": site_id, "state": "on", "all": True, "description": 5, "filter": [1]},
        headers=auth,
    )
    assert generic.json()["data"] == {
        "description": "must be a string",
        "capabilities": "must be an object",
    }
    assert summarized.json()["data"] == {
        "description": "must be a string",
        "filter": "must be an object",
    }
    query = await client.get(
        f"{BASE}/task", params={"siteId": site_id, "activeOnly": "maybe"}, headers=auth
    )
    assert (query.status_code, query.json()["data"]) == (
        400,
        {"activeOnly": "must be true or false"},
    )


async def test_a_query_value_of_the_wrong_type_is_a_parse_error(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get(
        f"{BASE}/task",
        params={"siteId": "00000000-0000-0000-0000-000000000000", "activeOnly": "maybe"},
        headers=auth,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["message"].startswith("Failed to parse request data: ")
    assert body["data"] == {"activeOnly": "must be true or false"}
