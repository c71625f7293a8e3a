"""Rack rule associations and the validate/plan dry run over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from nico.services import Services
from tests.rules.support import BASE, make_rack, make_site, seed_example_rule

RULES = f"{BASE}/task/rule"
VALIDATE = f"{RULES}/validate"


@pytest.fixture
async def site_id(services: Services) -> uuid.UUID:
    return await make_site(services.db)


@pytest.fixture
async def rack_id(services: Services, site_id: uuid.UUID) -> uuid.UUID:
    return await make_rack(services.db, site_id, name="rack-1")


async def create(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, **fields: Any
) -> dict[str, Any]:
    example = seed_example_rule()
    body = {
        "siteId": str(site_id),
        "name": "rule",
        "operationType": "PowerControl",
        "operationCode": "power_on",
        "ruleDefinition": example["ruleDefinition"],
        **fields,
    }
    response = await client.post(RULES, json=body, headers=auth)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


def rack_rule(rack_id: uuid.UUID, kind: str = "PowerControl", code: str = "power_on") -> str:
    return f"{BASE}/rack/{rack_id}/rule/{kind}/{code}"


async def test_association_beats_default_and_falls_back_when_removed(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, rack_id: uuid.UUID
) -> None:
    params = {"siteId": str(site_id)}
    builtin = await client.get(rack_rule(rack_id), params=params, headers=auth)
    assert builtin.status_code == 200
    assert (builtin.json()["source"], builtin.json()["ruleId"]) == ("builtin", None)
    assert builtin.json()["ruleName"] == "Built-in graceful power on"

    default = await create(client, auth, site_id, name="site default", isDefault=True)
    assert (await client.get(rack_rule(rack_id), params=params, headers=auth)).json()[
        "ruleId"
    ] == default["id"]

    mine = await create(client, auth, site_id, name="rack special")
    put = await client.put(
        rack_rule(rack_id, "power_control", "power_on"),
        json={"siteId": str(site_id), "ruleId": mine["id"]},
        headers=auth,
    )
    assert put.status_code == 200
    assert (put.json()["source"], put.json()["ruleId"]) == ("rack", mine["id"])
    got = await client.get(rack_rule(rack_id), params=params, headers=auth)
    assert got.json()["ruleDefinition"] == mine["ruleDefinition"]

    replacement = await create(client, auth, site_id, name="replacement")
    await client.put(
        rack_rule(rack_id), json={"siteId": str(site_id), "ruleId": replacement["id"]}, headers=auth
    )
    assert (await client.get(rack_rule(rack_id), params=params, headers=auth)).json()[
        "ruleId"
    ] == replacement["id"]

    for _ in range(2):  # idempotent
        removed = await client.delete(rack_rule(rack_id), params=params, headers=auth)
        assert removed.status_code == 204
    after = await client.get(rack_rule(rack_id), params=params, headers=auth)
    assert (after.json()["source"], after.json()["ruleId"]) == ("default", default["id"])


async def test_association_requires_a_matching_rule_of_the_site(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site_id: uuid.UUID,
    rack_id: uuid.UUID,
    services: Services,
) -> None:
    on_rule = await create(client, auth, site_id)
    other_site = await make_site(services.db, name="other")
    foreign = await create(client, auth, other_site)
    url = rack_rule(rack_id, "PowerControl", "power_off")
    for rule_id, fragment in (
        (on_rule["id"], "PowerControl/power_on"),
        (foreign["id"], "does not exist"),
        (str(uuid.uuid4()), "does not exist"),
    ):
        response = await client.put(
            url, json={"siteId": str(site_id), "ruleId": rule_id}, headers=auth
        )
        assert response.status_code == 400
        assert fragment in response.json()["data"]["ruleId"]
    bad_id = await client.put(url, json={"siteId": str(site_id), "ruleId": "nope"}, headers=auth)
    assert bad_id.json()["data"] == {"ruleId": "must be a valid UUID"}


async def test_association_path_is_checked(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, rack_id: uuid.UUID
) -> None:
    params = {"siteId": str(site_id)}
    wrong_code = await client.get(
        rack_rule(rack_id, "PowerControl", "upgrade"), params=params, headers=auth
    )
    assert wrong_code.status_code == 400 and "operationCode" in wrong_code.json()["data"]
    wrong_type = await client.get(
        rack_rule(rack_id, "Teleport", "power_on"), params=params, headers=auth
    )
    assert wrong_type.status_code == 400 and "operationType" in wrong_type.json()["data"]
    bad_rack = await client.get(
        f"{BASE}/rack/xyz/rule/PowerControl/power_on", params=params, headers=auth
    )
    assert bad_rack.status_code == 400
    unknown = await client.get(rack_rule(uuid.uuid4()), params=params, headers=auth)
    assert (unknown.status_code, unknown.json()["message"]) == (404, "Rack not found")


async def test_validate_answers_the_normalized_definition_and_writes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    body = {
        "siteId": str(site_id),
        "operationType": "PowerControl",
        "operationCode": "power_off",
        "ruleDefinition": {
            "version": "v1",
            "steps": [
                {
                    "component_type": "compute",
                    "stage": 1,
                    "main_operation": {"name": "PowerControl"},
                }
            ],
        },
    }
    response = await client.post(VALIDATE, json=body, headers=auth)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["valid"] is True and result["plan"] is None
    assert result["ruleDefinition"]["steps"][0]["componentType"] == "Compute"
    listed = await client.get(RULES, params={"siteId": str(site_id)}, headers=auth)
    assert listed.json() == []

    body["ruleDefinition"]["steps"][0]["main_operation"]["name"] = "Sleep"
    invalid = await client.post(VALIDATE, json=body, headers=auth)
    assert invalid.status_code == 400
    assert "ruleDefinition.steps[0].mainOperation.parameters.duration" in invalid.json()["data"]


async def test_validate_plans_a_definition_for_a_rack(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, rack_id: uuid.UUID
) -> None:
    body = {
        "siteId": str(site_id),
        "operationType": "PowerControl",
        "operationCode": "power_on",
        "ruleDefinition": seed_example_rule()["ruleDefinition"],
        "rackId": str(rack_id),
    }
    response = await client.post(VALIDATE, json=body, headers=auth)
    assert response.status_code == 200, response.text
    plan = response.json()["plan"]
    step = plan["stages"][0]["steps"][0]
    assert step["trayCount"] == 18 and step["batches"] == 9
    assert step["trays"][0] == "rack-1-compute-01"
    assert plan["uncoveredComponentTypes"] == ["NVLSwitch", "PowerShelf"]
    assert plan["worstCaseDuration"] == "2m"
    assert any("timeout 2m" in w for w in plan["warnings"])


async def test_validate_explains_which_rule_a_rack_would_run(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, rack_id: uuid.UUID
) -> None:
    body = {
        "siteId": str(site_id),
        "operationType": "PowerControl",
        "operationCode": "power_on",
        "rackId": str(rack_id),
    }
    builtin = (await client.post(VALIDATE, json=body, headers=auth)).json()
    assert builtin["rule"] == {
        "source": "builtin",
        "ruleId": None,
        "name": "Built-in graceful power on",
    }
    assert [s["stage"] for s in builtin["plan"]["stages"]] == [1, 2, 3]
    assert builtin["plan"]["skippedSteps"] == []

    pinned = await create(client, auth, site_id, name="pinned")
    chosen = (
        await client.post(VALIDATE, json={**body, "ruleId": pinned["id"]}, headers=auth)
    ).json()
    assert chosen["rule"]["source"] == "pinned" and chosen["rule"]["ruleId"] == pinned["id"]

    missing_rack = await client.post(
        VALIDATE, json={**body, "rackId": str(uuid.uuid4())}, headers=auth
    )
    assert missing_rack.status_code == 400 and "rackId" in missing_rack.json()["data"]
    nothing = await client.post(
        VALIDATE, json={k: v for k, v in body.items() if k != "rackId"}, headers=auth
    )
    assert nothing.status_code == 400 and "ruleDefinition" in nothing.json()["data"]
