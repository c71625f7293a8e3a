"""Seed 004 wire models for operation rules (documentation and response shape).

Request bodies are checked by `nico.rules.requests` (one 400 listing every problem, and
snake_case keys accepted), so these models describe the camelCase wire form for OpenAPI;
responses are rendered by `rule_wire` from the stored, already-normalized definition.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nico.domain import OperationType
from nico.rules.model import ActionName
from nico.schemas.common import (
    Omittable,
    ResponseModel,
    UtcTimestamp,
    named_enum_copy,
    no_default,
    rfc3339,
)
from nico.store.models import OperationRule as OperationRuleRow

if TYPE_CHECKING:
    OperationRuleOperationType = OperationType
    ActionConfigName = ActionName
else:
    OperationRuleOperationType = named_enum_copy(
        "OperationRuleOperationType",
        OperationType,
        "Seed 004's enum plus `BringUp` (our addition: bring_up and ingest rules).",
    )
    ActionConfigName = named_enum_copy(
        "ActionConfigName", ActionName, "Executor-agnostic action names (seed 004)."
    )


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class RetryPolicy(_Wire):
    """Retry of each action call in the step."""

    maxAttempts: int = Field(
        description="Maximum number of attempts including the first (1 to 100)."
    )
    initialInterval: str = Field(
        description="Initial retry interval, Go duration (`1s`); at most 168h."
    )
    backoffCoefficient: float = Field(
        description="Backoff multiplier; must be >= 1.0.", json_schema_extra={"format": "double"}
    )
    maxInterval: Omittable[str] = Field(None, description="Cap on the retry interval.")


class ActionConfig(_Wire):
    """One action: name, optional timeout/poll interval, parameters per the action."""

    name: ActionConfigName
    timeout: Omittable[str] = Field(
        None, description="Per-attempt bound of one call; for polling actions the poll loop."
    )
    pollInterval: Omittable[str] = Field(None, description="Poll interval of polling actions.")
    parameters: Omittable[dict[str, Any]] = Field(
        None, description="Action-specific parameters (snake_case keys, as in seed 004)."
    )


class SequenceStep(_Wire):
    componentType: str = Field(description="Compute, NVLSwitch or PowerShelf.")
    stage: int = Field(description="Stage number (1 to 1000); same stage runs in parallel.")
    maxParallel: int = Field(
        0,
        description="Trays processed at once (at most 10000); 0 = all.",
        json_schema_extra=no_default,
    )
    timeout: Omittable[str] = Field(None, description="Bound of the whole step; at most 168h.")
    retry: Omittable[RetryPolicy] = None
    preOperation: Omittable[list[ActionConfig]] = None
    mainOperation: ActionConfig
    postOperation: Omittable[list[ActionConfig]] = None
    delayAfter: Omittable[str] = Field(None, description="Deprecated: a Sleep after post.")


class RuleDefinitionVersion(StrEnum):
    """Schema version. Currently always `v1`."""

    V1 = "v1"


class RuleDefinition(_Wire):
    version: RuleDefinitionVersion
    steps: list[SequenceStep] = Field(default_factory=list, json_schema_extra=no_default)


class OperationRule(ResponseModel):
    """A stored operation rule, as seed 004 answers it."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    description: str = Field("", json_schema_extra=no_default)
    operationType: OperationRuleOperationType
    operationCode: str
    ruleDefinition: RuleDefinition
    isDefault: bool
    created: UtcTimestamp
    updated: UtcTimestamp


class CreateRuleRequest(BaseModel):
    """POST /task/rule (snake_case keys are accepted too)."""

    siteId: str
    name: str = Field(description="Non-empty, at most 128 characters.")
    description: str | None = None
    operationType: OperationRuleOperationType
    operationCode: str
    ruleDefinition: RuleDefinition
    isDefault: bool | None = Field(
        None, description="Make it the default for its type and code (atomic swap)."
    )


class UpdateRuleRequest(BaseModel):
    """PATCH /task/rule/{id}: type and code are immutable."""

    siteId: str
    name: str | None = None
    description: str | None = None
    ruleDefinition: RuleDefinition | None = None


class ValidateRuleRequest(BaseModel):
    """POST /task/rule/validate: a definition to check, or the rule a rack would run."""

    siteId: str
    operationType: OperationRuleOperationType
    operationCode: str
    ruleDefinition: RuleDefinition | None = Field(
        None, description="Definition to check; absent: the rule resolved for `rackId`."
    )
    rackId: str | None = Field(None, description="Rack to plan against.")
    ruleId: str | None = Field(None, description="Pinned rule to resolve (with rackId).")


class SiteRequest(BaseModel):
    siteId: str


class RackRuleRequest(BaseModel):
    """PUT /rack/{id}/rule/{operationType}/{operationCode}."""

    siteId: str
    ruleId: str


class RackRule(ResponseModel):
    """The rule a rack runs for one (type, code), and why."""

    rackId: str
    operationType: OperationRuleOperationType
    operationCode: str
    source: Literal["rack", "default", "builtin"]
    ruleId: str | None
    ruleName: str
    ruleDefinition: RuleDefinition


def rule_wire(rule: OperationRuleRow) -> dict[str, Any]:
    """The stored rule as seed 004's `OperationRule` JSON."""
    return {
        "id": str(rule.id),
        "name": rule.name,
        "description": rule.description or "",
        "operationType": rule.operation_type,
        "operationCode": rule.operation_code,
        "ruleDefinition": rule.rule_definition,
        "isDefault": bool(rule.is_default),
        "created": rfc3339(rule.created),
        "updated": rfc3339(rule.updated),
    }


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a route that parses its JSON itself; nested models are
    referenced from the components the `OperationRule` response model contributes."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
