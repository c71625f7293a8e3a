"""The one rule model: the pydantic family that validates a definition is the schema
/openapi.json publishes for it (issue 13 finding 10)."""

from __future__ import annotations

from typing import Any

import httpx

from nico.api.openapi import drop_null_defaults
from nico.domain import OperationType
from nico.rules.durations import GoDuration
from nico.rules.schema import (
    PowerControlParameters,
    RuleDefinition,
    VerifyReachabilityParameters,
    check_definition,
)
from tests.rules.support import seed_example_rule

COMPONENTS = ("RuleDefinition", "SequenceStep", "ActionConfig", "RetryPolicy")


async def test_the_published_schema_is_the_validating_model(client: httpx.AsyncClient) -> None:
    published = (await client.get("/openapi.json")).json()["components"]["schemas"]
    generated = RuleDefinition.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    models: dict[str, Any] = {**generated.pop("$defs"), "RuleDefinition": generated}
    for schema in models.values():
        drop_null_defaults(schema)  # what build_openapi does to every component
    for name in COMPONENTS:
        assert published[name] == models[name], name
    assert published["RuleDefinitionVersion"]["enum"] == ["v1"]


def test_snake_case_input_durations_as_written_and_parameters_by_action() -> None:
    example = seed_example_rule()["ruleDefinition"]
    step = example["steps"][0]
    snake = {
        "version": "v1",
        "steps": [
            {
                "component_type": "compute",
                "stage": 1,
                "max_parallel": 2,
                "timeout": "2m",
                "pre_operation": step["preOperation"],
                "main_operation": step["mainOperation"],
                "post_operation": step["postOperation"],
                "delay_after": "15s",
                "retry": {
                    "max_attempts": 3,
                    "initial_interval": "10s",
                    "backoff_coefficient": 2,
                    "max_interval": "1m",
                },
            }
        ],
    }
    model, errors = check_definition(snake, operation_type=OperationType.POWER_CONTROL)
    assert errors == [] and model is not None
    parsed = model.steps[0]
    assert parsed.timeout == GoDuration("2m", 120.0)
    assert parsed.delay_after is not None and parsed.delay_after.text == "15s"
    assert isinstance(parsed.main_operation.parameters, PowerControlParameters)
    assert parsed.pre_operation is not None
    reach = parsed.pre_operation[0].parameters
    assert isinstance(reach, VerifyReachabilityParameters)
    assert reach.component_types == ["Compute"] and reach.require_all is True
    # The stored form is seed 004's camelCase JSON, durations exactly as written.
    wire = model.wire()
    assert wire["steps"][0]["timeout"] == "2m"
    assert wire["steps"][0]["retry"]["maxInterval"] == "1m"
    assert wire["steps"][0]["mainOperation"]["parameters"] == {"operation": "on"}


def test_a_parameter_the_action_does_not_take_is_named() -> None:
    definition = seed_example_rule()["ruleDefinition"]
    definition["steps"][0]["mainOperation"]["parameters"] = {"expected_status": "on"}
    _, errors = check_definition(definition, operation_type=OperationType.POWER_CONTROL)
    assert errors == [
        (
            "ruleDefinition.steps[0].mainOperation.parameters.expected_status",
            "is not a parameter of PowerControl (operation)",
        )
    ]
