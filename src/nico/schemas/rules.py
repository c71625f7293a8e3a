"""Seed 004 wire models around a rule: the stored rule, the request bodies, a rack's rule.

The definition itself is the rule model of `nico.rules.schema`, which validates it and
is the schema published for it. Request bodies are checked by `nico.rules.requests` (one
400 listing every problem, snake_case keys accepted); these request models describe them
for OpenAPI. Responses are rendered by `rule_wire` from the stored, normalized definition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from nico.domain import OperationType
from nico.rules.schema import RuleDefinition
from nico.schemas.common import (
    ResponseModel,
    UtcTimestamp,
    named_enum_copy,
    no_default,
    rfc3339,
)
from nico.store.models import OperationRule as OperationRuleRow

if TYPE_CHECKING:
    OperationRuleOperationType = OperationType
else:
    OperationRuleOperationType = named_enum_copy(
        "OperationRuleOperationType",
        OperationType,
        "Seed 004's enum plus `BringUp` (our addition: bring_up and ingest rules).",
    )


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
