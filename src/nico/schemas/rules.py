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
from nico.schemas.common import ResponseModel, UtcTimestamp, rfc3339
from nico.store.models import OperationRule as OperationRuleRow


def _named_copy(name: str, source: type[StrEnum], doc: str) -> Any:
    """`source`'s members under seed 004's schema name (OpenAPI names an enum's schema
    after its class), so the wire enum can never drift from the one the code uses."""
    copy = StrEnum(name, {member.name: member.value for member in source})  # type: ignore[misc]  # functional API with computed members
    copy.__doc__ = doc
    return copy


if TYPE_CHECKING:
    OperationRuleOperationType = OperationType
    ActionConfigName = ActionName
else:
    OperationRuleOperationType = _named_copy(
        "OperationRuleOperationType",
        OperationType,
        "Seed 004's enum plus `BringUp` (our addition: bring_up and ingest rules).",
    )
    ActionConfigName = _named_copy(
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
    backoffCoefficient: float = Field(description="Backoff multiplier; must be >= 1.0.")
    maxInterval: str | None = Field(None, description="Cap on the retry interval.")


class ActionConfig(_Wire):
    """One action: name, optional timeout/poll interval, parameters per the action."""

    name: ActionConfigName
    timeout: str | None = Field(
        None, description="Per-attempt bound of one call; for polling actions the poll loop."
    )
    pollInterval: str | None = Field(None, description="Poll interval of polling actions.")
    parameters: dict[str, Any] | None = Field(
        None, description="Action-specific parameters (snake_case keys, as in seed 004)."
    )


class SequenceStep(_Wire):
    componentType: str = Field(description="Compute, NVLSwitch or PowerShelf.")
    stage: int = Field(description="Stage number (1 to 1000); same stage runs in parallel.")
    maxParallel: int = Field(0, description="Trays processed at once (at most 10000); 0 = all.")
    timeout: str | None = Field(None, description="Bound of the whole step; at most 168h.")
    retry: RetryPolicy | None = None
    preOperation: list[ActionConfig] | None = None
    mainOperation: ActionConfig
    postOperation: list[ActionConfig] | None = None
    delayAfter: str | None = Field(None, description="Deprecated: a Sleep after post.")


class RuleDefinition(_Wire):
    version: Literal["v1"] = "v1"
    steps: list[SequenceStep] = Field(default_factory=list)


class OperationRule(ResponseModel):
    """A stored operation rule, as seed 004 answers it."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    description: str = ""
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
