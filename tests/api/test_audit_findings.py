"""Issue 13's audit findings 2-6, each as the request a user sent and what they must see:
a 400 naming the field and nothing written, never a 500, never a silent reinterpretation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.test_rules_crud import RULES, count_rules, create_body, site_id
from tests.rules.support import BASE, seed_example_rule

__all__ = ["site_id"]  # the fixture, shared with the CRUD tests


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_deeply_nested_json_on_rule_routes_is_400_not_500(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    created = await client.post(RULES, json=create_body(site_id), headers=auth)
    assert created.status_code == 201, created.text
    rule = created.json()["id"]
    deep = f'{{"siteId": "{site_id}", "name": {nested(100_000)}}}'
    for method, url in (
        ("POST", RULES),
        ("POST", f"{RULES}/validate"),
        ("PATCH", f"{RULES}/{rule}"),
        ("POST", f"{RULES}/{rule}/default"),
    ):
        response = await client.request(
            method, url, content=deep, headers={**auth, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, (method, url, response.text)
        assert response.json()["message"].startswith("Failed to parse request data")
    assert await count_rules(client, auth, site_id) == 1


async def test_lone_surrogate_in_a_rule_is_400_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    raw = (
        f'{{"siteId": "{site_id}", "name": "bad\\ud800name", "description": "x\\udfffy",'
        ' "operationType": "PowerControl", "operationCode": "power_on",'
        ' "ruleDefinition": {"version": "v1", "steps": []}}'
    )
    response = await client.post(
        RULES, content=raw, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert set(response.json()["data"]) == {"name", "description"}
    assert "surrogate" in response.json()["data"]["name"]
    assert await count_rules(client, auth, site_id) == 0


async def test_rule_description_has_a_length_limit(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    huge = "x" * 4097
    response = await client.post(RULES, json=create_body(site_id, description=huge), headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["data"] == {"description": "must be at most 4096 characters"}
    assert await count_rules(client, auth, site_id) == 0
    ok = await client.post(RULES, json=create_body(site_id, description="x" * 4096), headers=auth)
    assert ok.status_code == 201, ok.text
    patched = await client.patch(
        f"{RULES}/{ok.json()['id']}",
        json={"siteId": str(site_id), "description": huge},
        headers=auth,
    )
    assert patched.status_code == 400
    assert patched.json()["data"] == {"description": "must be at most 4096 characters"}


@pytest.mark.parametrize(
    ("role", "admin"),
    [
        ("PROVIDER_ADMIN", True),
        ("NICO_PROVIDER_ADMIN", True),
        ("FORGE_PROVIDER_ADMIN", True),
        ("provider_admin", False),
        ("Provider_Admin", False),
        ("nico_provider_admin", False),
        ("A_B_PROVIDER_ADMIN", False),
        (" PROVIDER_ADMIN", False),
    ],
)
async def test_role_names_compare_exactly_as_upstream(
    client: httpx.AsyncClient, make_token: Any, role: str, admin: bool
) -> None:
    headers = {"Authorization": f"Bearer {make_token(roles=[role])}"}
    response = await client.get(f"{BASE}/infrastructure-provider/current", headers=headers)
    assert (response.status_code == 200) is admin, (role, response.status_code, response.text)
    if not admin:
        assert response.status_code == 403


async def test_site_flow_must_be_a_json_boolean(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await client.get(f"{BASE}/infrastructure-provider/current", headers=auth)
    made = await client.post(f"{BASE}/site", json={"name": "s1"}, headers=auth)
    assert made.status_code == 201, made.text
    site = made.json()["id"]
    for bad in ("no", "yes", 0, 1, "false"):
        response = await client.patch(
            f"{BASE}/site/{site}", json={"capabilities": {"flow": bad}}, headers=auth
        )
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["data"] == {"capabilities.flow": "must be true or false"}
    fetched = await client.get(f"{BASE}/site/{site}", headers=auth)
    assert fetched.json()["capabilities"]["flow"] is False
    created = await client.post(
        f"{BASE}/site", json={"name": "s2", "capabilities": {"flow": "yes"}}, headers=auth
    )
    assert created.status_code == 400, created.text


@pytest.mark.parametrize("value", ["yes", "no", "on", "off", "y", "n", "TrUe"])
async def test_query_booleans_take_only_go_parsebool_forms(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, value: str
) -> None:
    tray = uuid.uuid4()
    for url, name in (
        (f"{BASE}/task", "activeOnly"),
        (f"{BASE}/task", "includeReport"),
        (f"{BASE}/tray/{tray}/task", "activeOnly"),
        (f"{BASE}/rack", "includeComponents"),
        (RULES, "isDefault"),
    ):
        response = await client.get(url, params={"siteId": str(site_id), name: value}, headers=auth)
        assert response.status_code == 400, (url, name, value, response.text)
        assert response.json()["data"] == {name: "must be true or false"}, (url, name)


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True", "0", "f", "FALSE"])
async def test_query_booleans_still_take_every_go_parsebool_form(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, value: str
) -> None:
    response = await client.get(
        f"{BASE}/task", params={"siteId": str(site_id), "activeOnly": value}, headers=auth
    )
    assert response.status_code == 200, response.text


async def test_rule_version_is_required(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    body = create_body(site_id)
    del body["ruleDefinition"]["version"]
    response = await client.post(RULES, json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["data"] == {"ruleDefinition.version": "is required"}
    assert await count_rules(client, auth, site_id) == 0


async def test_seed_004_example_posted_as_read_round_trips(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    example = seed_example_rule()
    example["isDefault"] = False
    created = await client.post(RULES, json={**example, "siteId": str(site_id)}, headers=auth)
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["id"] != example["id"] and stored["created"] != example["created"]
    # What GET answers can be sent back as it is.
    read = (
        await client.get(f"{RULES}/{stored['id']}", params={"siteId": str(site_id)}, headers=auth)
    ).json()
    again = await client.post(
        RULES, json={**read, "siteId": str(site_id), "name": "copy"}, headers=auth
    )
    assert again.status_code == 201, again.text
    assert again.json()["ruleDefinition"] == example["ruleDefinition"]
    patch = {"siteId": str(site_id), "name": "renamed", "id": read["id"], "updated": "x"}
    patched = await client.patch(f"{RULES}/{stored['id']}", json=patch, headers=auth)
    assert patched.status_code == 204, patched.text


async def test_unknown_rule_fields_are_still_refused(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    response = await client.post(RULES, json=create_body(site_id, colour="red"), headers=auth)
    assert response.status_code == 400
    assert list(response.json()["data"]) == ["colour"]
    assert await count_rules(client, auth, site_id) == 0
