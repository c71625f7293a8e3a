"""Operation rule CRUD over HTTP: seed 004 round-trip, listing, update, delete guard."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from nico.services import Services
from tests.rules.support import BASE, make_site, seed_004_text, seed_example_rule

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
