"""Operation rule CRUD over HTTP: seed 004 round-trip, listing, update, delete guard."""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from nico.domain import OperationType
from nico.rules.model import ActionName
from nico.services import Services
from tests.rules.support import BASE, make_rack, make_site, seed_004_text, seed_example_rule

RULES = f"{BASE}/task/rule"


@pytest.fixture
async def site_id(services: Services) -> uuid.UUID:
    return await make_site(services.db)


def create_body(site_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    example = seed_example_rule()
    body = {
        "siteId": str(site_id),
        "name": example["name"],
        "description": example["description"],
        "operationType": example["operationType"],
        "operationCode": example["operationCode"],
        "ruleDefinition": example["ruleDefinition"],
    }
    body.update(overrides)
    return body


def operation_rule_schema() -> dict[str, Any]:
    """Seed 004's `OperationRule` schema with its component refs resolvable."""
    text = seed_004_text()
    spec = yaml.safe_load(text[text.index("openapi: 3.1.0") : text.index("```\n\n## Examples")])
    components = spec["components"]["schemas"]
    return {"$ref": "#/components/schemas/OperationRule", "components": {"schemas": components}}


async def test_seed_example_round_trips(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    created = await client.post(RULES, json=create_body(site_id), headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    example = seed_example_rule()
    assert body["ruleDefinition"] == example["ruleDefinition"]
    assert body["isDefault"] is False
    assert body["created"] != "0001-01-01T00:00:00Z" and body["created"].endswith("Z")

    fetched = await client.get(
        f"{RULES}/{body['id']}", params={"siteId": str(site_id)}, headers=auth
    )
    assert fetched.status_code == 200
    assert fetched.json() == body
    for key in ("name", "description", "operationType", "operationCode", "ruleDefinition"):
        assert fetched.json()[key] == example[key]
    jsonschema.validate(fetched.json(), operation_rule_schema())


async def test_snake_case_input_is_stored_camel_case(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    snake = {
        "site_id": str(site_id),
        "name": "snake",
        "operation_type": "power_control",
        "operation_code": "power_off",
        "rule_definition": {
            "version": "v1",
            "steps": [
                {
                    "component_type": "compute",
                    "stage": 1,
                    "max_parallel": 4,
                    "retry": {
                        "max_attempts": 2,
                        "initial_interval": "1s",
                        "backoff_coefficient": 1.5,
                    },
                    "main_operation": {"name": "PowerControl"},
                    "post_operation": [
                        {
                            "name": "VerifyPowerStatus",
                            "timeout": "3m",
                            "poll_interval": "5s",
                            "parameters": {"expectedStatus": "off"},
                        }
                    ],
                    "delay_after": "1m30s",
                }
            ],
        },
    }
    response = await client.post(RULES, json=snake, headers=auth)
    assert response.status_code == 201, response.text
    rule = response.json()
    assert rule["operationType"] == "PowerControl"
    assert rule["ruleDefinition"]["steps"][0] == {
        "componentType": "Compute",
        "stage": 1,
        "maxParallel": 4,
        "retry": {"maxAttempts": 2, "initialInterval": "1s", "backoffCoefficient": 1.5},
        "mainOperation": {"name": "PowerControl"},
        "postOperation": [
            {
                "name": "VerifyPowerStatus",
                "timeout": "3m",
                "pollInterval": "5s",
                "parameters": {"expected_status": "off"},
            }
        ],
        "delayAfter": "1m30s",
    }


async def test_bring_up_rules_can_be_created(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    body = create_body(
        site_id,
        operationType="BringUp",
        operationCode="ingest",
        ruleDefinition={
            "version": "v1",
            "steps": [
                {
                    "componentType": "Compute",
                    "stage": 1,
                    "mainOperation": {"name": "InjectExpectation"},
                }
            ],
        },
    )
    response = await client.post(RULES, json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["operationType"] == "BringUp"


async def create(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(RULES, json=create_body(site_id, **overrides), headers=auth)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


async def count_rules(client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID) -> int:
    response = await client.get(RULES, params={"siteId": str(site_id)}, headers=auth)
    assert response.status_code == 200
    return int(json.loads(response.headers["X-Pagination"])["total"])


async def test_invalid_rule_is_one_400_naming_every_field_and_stores_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    definition = seed_example_rule()["ruleDefinition"]
    definition["steps"][0]["mainOperation"]["name"] = "Reboot"
    definition["steps"][0]["timeout"] = "2 minutes"
    body = create_body(site_id, name="", operationCode="power_up", ruleDefinition=definition)
    response = await client.post(RULES, json=body, headers=auth)
    assert response.status_code == 400
    error = response.json()
    assert error["source"] == "nico"
    assert set(error["data"]) == {
        "name",
        "operationCode",
        "ruleDefinition.steps[0].mainOperation.name",
        "ruleDefinition.steps[0].timeout",
    }
    assert "ruleDefinition.steps[0].mainOperation.name: unknown action 'Reboot'" in error["message"]
    assert "ruleDefinition.steps[0].timeout: invalid duration" in error["message"]
    assert await count_rules(client, auth, site_id) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"operationType": "Reboot"}, "operationType"),
        ({"operationType": "FirmwareControl"}, "operationCode"),
        ({"name": "x" * 129}, "name"),
        ({"description": 5}, "description"),
        ({"isDefault": "yes"}, "isDefault"),
        ({"ruleDefinition": None}, "ruleDefinition"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_rule_level_checks(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site_id: uuid.UUID,
    overrides: dict[str, Any],
    field: str,
) -> None:
    response = await client.post(RULES, json=create_body(site_id, **overrides), headers=auth)
    assert response.status_code == 400
    assert field in response.json()["data"], response.json()
    assert await count_rules(client, auth, site_id) == 0


async def test_body_that_is_not_json_or_not_an_object(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    broken = await client.post(RULES, content=b"{nope", headers=auth)
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["message"]
    listed = await client.post(RULES, json=[1, 2], headers=auth)
    assert listed.status_code == 400 and listed.json()["data"] == {"body": "must be an object"}


def absurd_definition() -> dict[str, Any]:
    """The seed example with numbers and durations no datacenter rule needs."""
    definition: dict[str, Any] = seed_example_rule()["ruleDefinition"]
    step = definition["steps"][0]
    step["stage"] = 10**30
    step["maxParallel"] = 1e20
    step["timeout"] = "9999999999h"
    step["retry"] = {"maxAttempts": 10**7, "initialInterval": "1s", "backoffCoefficient": 2}
    step["mainOperation"]["timeout"] = "9" * 400 + "h"
    return definition


ABSURD_PROBLEMS = {
    "ruleDefinition.steps[0].stage": "must be at most 1000",
    "ruleDefinition.steps[0].maxParallel": "must be an integer",
    "ruleDefinition.steps[0].timeout": "must be at most 168h (7 days)",
    "ruleDefinition.steps[0].retry.maxAttempts": "must be at most 100",
    "ruleDefinition.steps[0].mainOperation.timeout": "must be at most 168h (7 days)",
}


async def test_absurd_numbers_and_durations_are_one_400_and_store_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, services: Services
) -> None:
    created = await client.post(
        RULES, json=create_body(site_id, ruleDefinition=absurd_definition()), headers=auth
    )
    assert created.status_code == 400
    assert created.json()["data"] == ABSURD_PROBLEMS
    assert "retry.maxAttempts: must be at most 100" in created.json()["message"]
    assert await count_rules(client, auth, site_id) == 0

    rule = await create(client, auth, site_id)
    url = f"{RULES}/{rule['id']}"
    patched = await client.patch(
        url, json={"siteId": str(site_id), "ruleDefinition": absurd_definition()}, headers=auth
    )
    assert (patched.status_code, patched.json()["data"]) == (400, ABSURD_PROBLEMS)
    unchanged = await client.get(url, params={"siteId": str(site_id)}, headers=auth)
    assert unchanged.json() == rule

    # The dry run with a rack plans the rule: 10**7 attempts used to be looped over on
    # the event loop (seconds per request); now it is refused before any planning.
    rack_id = await make_rack(services.db, site_id, name="rack-1")
    planned = await client.post(
        f"{RULES}/validate",
        json={
            "siteId": str(site_id),
            "rackId": str(rack_id),
            "operationType": "PowerControl",
            "operationCode": "power_on",
            "ruleDefinition": absurd_definition(),
        },
        headers=auth,
    )
    assert (planned.status_code, planned.json()["data"]) == (400, ABSURD_PROBLEMS)


COEFFICIENT = "ruleDefinition.steps[0].retry.backoffCoefficient"


def with_coefficient(body: dict[str, Any], token: str) -> bytes:
    """`body` as JSON whose step 0 retries with `backoffCoefficient` spelled `token`."""
    body["ruleDefinition"]["steps"][0]["retry"] = {
        "maxAttempts": 3,
        "initialInterval": "1s",
        "backoffCoefficient": 12345.5,
    }
    return json.dumps(body).replace("12345.5", token).encode()


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("NaN", "NaN is not valid JSON"),
        ("Infinity", "Infinity is not valid JSON"),
        ("-Infinity", "-Infinity is not valid JSON"),
        ("1e999", "is out of range for a number"),
    ],
)
async def test_nan_and_infinity_are_refused_by_field_path_and_store_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    site_id: uuid.UUID,
    token: str,
    problem: str,
) -> None:
    expected = (
        400,
        f"Failed to parse request data: {COEFFICIENT}: {problem}",
        {COEFFICIENT: problem},
    )

    created = await client.post(
        RULES, content=with_coefficient(create_body(site_id), token), headers=auth
    )
    assert (created.status_code, created.json()["message"], created.json()["data"]) == expected
    assert await count_rules(client, auth, site_id) == 0

    rule = await create(client, auth, site_id)
    url = f"{RULES}/{rule['id']}"
    patch = {"siteId": str(site_id), "ruleDefinition": copy.deepcopy(rule["ruleDefinition"])}
    patched = await client.patch(url, content=with_coefficient(patch, token), headers=auth)
    assert (patched.status_code, patched.json()["message"], patched.json()["data"]) == expected
    # The rule and the site's list still read back (a stored NaN made both answer 500).
    fetched = await client.get(url, params={"siteId": str(site_id)}, headers=auth)
    assert (fetched.status_code, fetched.json()) == (200, rule)
    assert await count_rules(client, auth, site_id) == 1

    validate = {
        "siteId": str(site_id),
        "operationType": "PowerControl",
        "operationCode": "power_on",
        "ruleDefinition": copy.deepcopy(rule["ruleDefinition"]),
    }
    checked = await client.post(
        f"{RULES}/validate", content=with_coefficient(validate, token), headers=auth
    )
    assert (checked.status_code, checked.json()["message"], checked.json()["data"]) == expected


async def test_site_guard_runs_on_create(
    client: httpx.AsyncClient, auth: dict[str, str], services: Services
) -> None:
    missing = await client.post(RULES, json=create_body(uuid.uuid4()), headers=auth)
    assert missing.status_code == 400
    no_flow = await make_site(services.db, flow=False, name="no-flow")
    gated = await client.post(RULES, json=create_body(no_flow), headers=auth)
    assert gated.status_code == 412
    foreign = await make_site(services.db, org="other", name="theirs")
    refused = await client.post(RULES, json=create_body(foreign), headers=auth)
    assert refused.status_code == 403


async def test_get_checks_id_and_site(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, services: Services
) -> None:
    rule = await create(client, auth, site_id)
    params = {"siteId": str(site_id)}
    bad = await client.get(f"{RULES}/not-a-uuid", params=params, headers=auth)
    assert (bad.status_code, bad.json()["message"]) == (400, "Invalid Rule ID specified in URL")
    unknown = await client.get(f"{RULES}/{uuid.uuid4()}", params=params, headers=auth)
    assert (unknown.status_code, unknown.json()["message"]) == (404, "Rule not found")
    other = await make_site(services.db, name="other")
    elsewhere = await client.get(
        f"{RULES}/{rule['id']}", params={"siteId": str(other)}, headers=auth
    )
    assert elsewhere.status_code == 404
    no_site = await client.get(f"{RULES}/{rule['id']}", headers=auth)
    assert no_site.status_code == 400
    assert no_site.json()["message"] == "siteId query parameter is required"
    stray = await client.get(f"{RULES}/{rule['id']}", params={**params, "x": "1"}, headers=auth)
    assert stray.status_code == 400


async def test_list_filters_pages_and_orders_newest_first(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    made = [await create(client, auth, site_id, name=f"on-{n}") for n in range(3)]
    off = await create(
        client,
        auth,
        site_id,
        name="off",
        operationCode="power_off",
        ruleDefinition={
            "version": "v1",
            "steps": [
                {"componentType": "Compute", "stage": 1, "mainOperation": {"name": "PowerControl"}}
            ],
        },
    )
    await client.post(
        f"{RULES}/{made[0]['id']}/default", params={"siteId": str(site_id)}, headers=auth
    )
    params: dict[str, Any] = {"siteId": str(site_id)}

    everything = await client.get(RULES, params=params, headers=auth)
    ids = [r["id"] for r in everything.json()]
    assert set(ids) == {r["id"] for r in [*made, off]}
    created = [r["created"] for r in everything.json()]
    assert created == sorted(created, reverse=True)

    page = await client.get(RULES, params={**params, "pageSize": 2, "pageNumber": 2}, headers=auth)
    assert [r["id"] for r in page.json()] == ids[2:]
    assert json.loads(page.headers["X-Pagination"]) == {
        "pageNumber": 2,
        "pageSize": 2,
        "total": 4,
        "orderBy": None,
    }

    by_code = await client.get(RULES, params={**params, "operationCode": "power_off"}, headers=auth)
    assert [r["id"] for r in by_code.json()] == [off["id"]]
    defaults = await client.get(RULES, params={**params, "isDefault": "true"}, headers=auth)
    assert [r["id"] for r in defaults.json()] == [made[0]["id"]]
    typed = await client.get(
        RULES, params={**params, "operationType": "power_control"}, headers=auth
    )
    assert len(typed.json()) == 4
    by_name = await client.get(RULES, params={**params, "orderBy": "NAME_ASC"}, headers=auth)
    assert [r["name"] for r in by_name.json()] == ["off", "on-0", "on-1", "on-2"]

    wrong_type = await client.get(RULES, params={**params, "operationType": "Dance"}, headers=auth)
    assert wrong_type.status_code == 400 and "operationType" in wrong_type.json()["data"]
    wrong_code = await client.get(
        RULES,
        params={**params, "operationType": "FirmwareControl", "operationCode": "power_on"},
        headers=auth,
    )
    assert wrong_code.status_code == 400 and "operationCode" in wrong_code.json()["data"]


async def test_patch_updates_and_refuses_immutable_fields(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    rule = await create(client, auth, site_id)
    url = f"{RULES}/{rule['id']}"
    params = {"siteId": str(site_id)}
    immutable = await client.patch(
        url, json={"siteId": str(site_id), "operationCode": "power_off", "name": "x"}, headers=auth
    )
    assert immutable.status_code == 400
    assert "is immutable" in immutable.json()["data"]["operationCode"]
    empty = await client.patch(url, json={"siteId": str(site_id)}, headers=auth)
    assert empty.status_code == 400
    bad_definition = copy.deepcopy(rule["ruleDefinition"])
    bad_definition["steps"][0]["postOperation"][0]["parameters"]["expected_status"] = "sideways"
    invalid = await client.patch(
        url,
        json={"siteId": str(site_id), "name": "renamed", "ruleDefinition": bad_definition},
        headers=auth,
    )
    assert invalid.status_code == 400
    assert set(invalid.json()["data"]) == {
        "ruleDefinition.steps[0].postOperation[0].parameters.expected_status"
    }
    unchanged = await client.get(url, params=params, headers=auth)
    assert unchanged.json() == rule

    new_definition = copy.deepcopy(rule["ruleDefinition"])
    new_definition["steps"][0]["maxParallel"] = 6
    ok = await client.patch(
        url,
        json={
            "siteId": str(site_id),
            "name": "renamed",
            "description": "",
            "ruleDefinition": new_definition,
        },
        headers=auth,
    )
    assert ok.status_code == 204 and ok.content == b""
    after = (await client.get(url, params=params, headers=auth)).json()
    assert (after["name"], after["description"]) == ("renamed", "")
    assert after["ruleDefinition"]["steps"][0]["maxParallel"] == 6
    assert after["operationCode"] == "power_on" and after["created"] == rule["created"]
    missing = await client.patch(
        f"{RULES}/{uuid.uuid4()}", json={"siteId": str(site_id), "name": "x"}, headers=auth
    )
    assert missing.status_code == 404


async def test_delete_guards_default_and_associated_rules(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID, services: Services
) -> None:
    params = {"siteId": str(site_id)}
    plain = await create(client, auth, site_id, name="plain")
    assert (
        await client.delete(f"{RULES}/{plain['id']}", params=params, headers=auth)
    ).status_code == 204
    assert (
        await client.get(f"{RULES}/{plain['id']}", params=params, headers=auth)
    ).status_code == 404
    assert (
        await client.delete(f"{RULES}/{plain['id']}", params=params, headers=auth)
    ).status_code == 404

    default = await create(client, auth, site_id, name="default", isDefault=True)
    assert default["isDefault"] is True
    refused = await client.delete(f"{RULES}/{default['id']}", params=params, headers=auth)
    assert refused.status_code == 409
    assert "default PowerControl/power_on" in refused.json()["message"]

    rack_id = await make_rack(services.db, site_id, name="rack-7", shape={"Compute": 1})
    pinned = await create(client, auth, site_id, name="pinned")
    put = await client.put(
        f"{BASE}/rack/{rack_id}/rule/PowerControl/power_on",
        json={"siteId": str(site_id), "ruleId": pinned["id"]},
        headers=auth,
    )
    assert put.status_code == 200, put.text
    guarded = await client.delete(f"{RULES}/{pinned['id']}", params=params, headers=auth)
    assert guarded.status_code == 409 and "rack-7" in guarded.json()["message"]

    forced = await client.delete(
        f"{RULES}/{pinned['id']}", params={**params, "force": "true"}, headers=auth
    )
    assert forced.status_code == 204
    effective = await client.get(
        f"{BASE}/rack/{rack_id}/rule/PowerControl/power_on", params=params, headers=auth
    )
    assert effective.json()["source"] == "default"


async def test_set_default_swaps(
    client: httpx.AsyncClient, auth: dict[str, str], site_id: uuid.UUID
) -> None:
    first = await create(client, auth, site_id, name="first", isDefault=True)
    second = await create(client, auth, site_id, name="second")
    swapped = await client.post(
        f"{RULES}/{second['id']}/default", json={"siteId": str(site_id)}, headers=auth
    )
    assert swapped.status_code == 200 and swapped.json()["isDefault"] is True
    params = {"siteId": str(site_id)}
    old = await client.get(f"{RULES}/{first['id']}", params=params, headers=auth)
    assert old.json()["isDefault"] is False
    missing = await client.post(f"{RULES}/{uuid.uuid4()}/default", params=params, headers=auth)
    assert missing.status_code == 404


async def test_rules_need_a_provider_admin(
    client: httpx.AsyncClient, make_token: Any, site_id: uuid.UUID
) -> None:
    tenant = {"Authorization": f"Bearer {make_token(roles=['TENANT_ADMIN'])}"}
    response = await client.post(RULES, json=create_body(site_id, name=""), headers=tenant)
    assert response.status_code == 403


async def test_openapi_documents_the_rule_contract(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    # Seed 004's schema names, derived from the enums the code runs on.
    assert schemas["OperationRuleOperationType"]["enum"] == [t.value for t in OperationType]
    assert schemas["OperationRuleOperationType"]["enum"] == [
        "PowerControl",
        "FirmwareControl",
        "BringUp",
    ]
    assert schemas["ActionConfigName"]["enum"] == [a.value for a in ActionName]
    assert len(schemas["ActionConfigName"]["enum"]) == 11
    path = "/v2/org/{org}/nico/task/rule"
    create_schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    assert "ruleDefinition" in create_schema["schema"]["properties"]
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs <= set(schemas)


async def test_a_nul_anywhere_in_a_rule_is_400_by_field_path_on_every_database(
    any_db_client: httpx.AsyncClient, any_db_services: Services, auth: dict[str, str]
) -> None:
    site_id = await make_site(any_db_services.db)
    body = create_body(site_id, name="power\x00on")
    body["ruleDefinition"]["steps"][0]["mainOperation"]["parameters"] = {"operation": "o\x00n"}
    response = await any_db_client.post(RULES, json=body, headers=auth)
    assert response.status_code == 400, response.text
    nul = "must not contain NUL characters (\\u0000)"
    assert response.json()["data"] == {
        "name": nul,
        "ruleDefinition.steps[0].mainOperation.parameters.operation": nul,
    }
    assert await count_rules(any_db_client, auth, site_id) == 0
