"""Rule request bodies checked in one pass: a single 400 lists every problem by path.

camelCase and snake_case keys are both accepted, so upstream rule files load as written.
`siteId` is read separately by the site guard, before these checks run.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nico.domain import OperationType
from nico.errors import ValidationFailed
from nico.ids import optional_uuid
from nico.rules.model import RuleDefinition
from nico.rules.schema import Errors
from nico.rules.validation import check_rule_definition, object_fields

INVALID_REQUEST = "Failed to validate request data"
NAME_MAX = 128
# No seed gives one; the same cap as a tray's description, so a list of rules stays small.
DESCRIPTION_MAX = 4096
# Server-set fields a GET answers: a body read back is accepted, and these are ignored.
READ_ONLY = frozenset({"id", "created", "updated"})

_CREATE_KEYS = (
    "siteId",
    "name",
    "description",
    "operationType",
    "operationCode",
    "ruleDefinition",
    "isDefault",
)
_UPDATE_KEYS = ("siteId", "name", "description", "ruleDefinition")
_IMMUTABLE = {
    "operationType": "is immutable; create a new rule for another operation type",
    "operation_type": "is immutable; create a new rule for another operation type",
    "operationCode": "is immutable; create a new rule for another operation code",
    "operation_code": "is immutable; create a new rule for another operation code",
    "isDefault": "cannot be changed here; use POST /task/rule/{id}/default",
    "is_default": "cannot be changed here; use POST /task/rule/{id}/default",
}
_VALIDATE_KEYS = ("siteId", "operationType", "operationCode", "ruleDefinition", "rackId", "ruleId")


def site_id_of(body: Mapping[str, Any]) -> Any:
    """The body's `siteId` (or `site_id`) as given, for the site guard."""
    return body.get("siteId", body.get("site_id"))


def check_operation(
    type_raw: Any, code_raw: Any, errors: Errors, *, type_path: str, code_path: str
) -> tuple[OperationType | None, str | None]:
    """Operation type (PowerControl or power_control) and a code valid for it."""
    operation_type: OperationType | None = None
    if type_raw is None:
        errors.append((type_path, "is required"))
    else:
        try:
            operation_type = OperationType.parse(type_raw)
        except ValueError as exc:
            errors.append((type_path, str(exc)))
    if code_raw is None or code_raw == "":
        errors.append((code_path, "is required"))
        return operation_type, None
    code = str(code_raw).strip().lower() if isinstance(code_raw, str) else None
    if code is None:
        errors.append((code_path, "must be a string"))
        return operation_type, None
    if operation_type is not None and code not in operation_type.codes:
        errors.append(
            (
                code_path,
                f"invalid operation code '{code_raw}' for operation type "
                f"'{operation_type.value}': must be one of [{' '.join(operation_type.codes)}]",
            )
        )
        return operation_type, None
    return operation_type, code


def _name(value: Any, errors: Errors) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.append(("name", "must be a non-empty string"))
        return None
    if len(value.strip()) > NAME_MAX:
        errors.append(("name", f"must be at most {NAME_MAX} characters"))
        return None
    return value.strip()


def _description(value: Any, errors: Errors) -> str | None:
    if not isinstance(value, str):
        errors.append(("description", "must be a string"))
        return None
    if len(value) > DESCRIPTION_MAX:
        errors.append(("description", f"must be at most {DESCRIPTION_MAX} characters"))
        return None
    return value


def writable(body: Any) -> Any:
    """The body without the read-only fields (`id`, `created`, `updated`) a GET answers,
    so a rule read can be sent back as it is; every other unknown field is still refused."""
    if not isinstance(body, Mapping):
        return body
    return {k: v for k, v in body.items() if k not in READ_ONLY}


def _definition(
    raw: Any, operation_type: OperationType | None, code: str | None, errors: Errors
) -> RuleDefinition | None:
    wire, problems = check_rule_definition(
        raw, operation_type=operation_type, operation_code=code, path="ruleDefinition"
    )
    errors.extend(problems)
    return RuleDefinition.from_wire(wire) if wire is not None else None


@dataclass(frozen=True)
class CreateRule:
    name: str
    description: str
    operation_type: OperationType
    operation_code: str
    definition: RuleDefinition
    is_default: bool


def check_rule_attributes(
    fields: Mapping[str, Any], errors: Errors
) -> tuple[str | None, str | None, bool]:
    """Name (required), description and isDefault of a create body, by canonical key.

    The dry run (`/task/rule/validate`) does not take these, so `nico rule import` runs
    this same check on every rule of a file before it creates any.
    """
    name = _name(fields["name"], errors) if "name" in fields else None
    if "name" not in fields:
        errors.append(("name", "is required"))
    description = _description(fields.get("description", ""), errors)
    is_default = fields.get("isDefault", False)
    if not isinstance(is_default, bool):
        errors.append(("isDefault", "must be true or false"))
        is_default = False
    return name, description, is_default


def parse_create(body: Any) -> CreateRule:
    errors: Errors = []
    body = writable(body)
    fields = object_fields(body, _CREATE_KEYS, "", errors)
    name, description, is_default = (
        check_rule_attributes(fields, errors) if fields is not None else (None, "", False)
    )
    fields = fields or {}
    operation_type, code = check_operation(
        fields.get("operationType"),
        fields.get("operationCode"),
        errors,
        type_path="operationType",
        code_path="operationCode",
    )
    definition = None
    if "ruleDefinition" in fields:
        definition = _definition(fields["ruleDefinition"], operation_type, code, errors)
    elif isinstance(body, Mapping):
        errors.append(("ruleDefinition", "is required"))
    if errors:
        raise ValidationFailed(INVALID_REQUEST, errors)
    assert name is not None and description is not None and definition is not None
    assert operation_type is not None and code is not None
    return CreateRule(name, description, operation_type, code, definition, is_default)


@dataclass(frozen=True)
class UpdateRule:
    """Changes to apply; None means unchanged."""

    name: str | None
    description: str | None
    definition: RuleDefinition | None


def parse_update(body: Any, operation_type: OperationType, operation_code: str) -> UpdateRule:
    errors: Errors = []
    body = writable(body)
    if isinstance(body, Mapping):
        for key in body:
            if key in _IMMUTABLE:
                errors.append((str(key), _IMMUTABLE[str(key)]))
        body = {k: v for k, v in body.items() if k not in _IMMUTABLE}
    fields = object_fields(body, _UPDATE_KEYS, "", errors) or {}
    name = _name(fields["name"], errors) if "name" in fields else None
    description = _description(fields["description"], errors) if "description" in fields else None
    definition = None
    if "ruleDefinition" in fields:
        definition = _definition(fields["ruleDefinition"], operation_type, operation_code, errors)
    if not errors and not ({"name", "description", "ruleDefinition"} & fields.keys()):
        errors.append(
            ("body", "at least one of name, description, ruleDefinition must be provided")
        )
    if errors:
        raise ValidationFailed(INVALID_REQUEST, errors)
    return UpdateRule(name, description, definition)


@dataclass(frozen=True)
class ValidateRule:
    operation_type: OperationType
    operation_code: str
    definition: RuleDefinition | None
    rack_id: uuid.UUID | None
    rule_id: uuid.UUID | None


def parse_validate(body: Any) -> ValidateRule:
    errors: Errors = []
    body = writable(body)
    fields = object_fields(body, _VALIDATE_KEYS, "", errors) or {}
    operation_type, code = check_operation(
        fields.get("operationType"),
        fields.get("operationCode"),
        errors,
        type_path="operationType",
        code_path="operationCode",
    )
    rack_id = optional_uuid(fields.get("rackId"), "rackId", errors)
    rule_id = optional_uuid(fields.get("ruleId"), "ruleId", errors)
    definition = None
    if "ruleDefinition" in fields:
        if rule_id is not None:
            errors.append(("ruleId", "give either ruleDefinition or ruleId, not both"))
        definition = _definition(fields["ruleDefinition"], operation_type, code, errors)
    elif "rackId" not in fields and isinstance(body, Mapping):
        errors.append(
            ("ruleDefinition", "is required unless rackId asks for the rule the rack would run")
        )
    if errors:
        raise ValidationFailed(INVALID_REQUEST, errors)
    assert operation_type is not None and code is not None
    return ValidateRule(operation_type, code, definition, rack_id, rule_id)


def parse_rule_id(body: Any) -> uuid.UUID:
    """`ruleId` of a rack association request."""
    errors: Errors = []
    fields = object_fields(body, ("siteId", "ruleId"), "", errors) or {}
    rule_id = None
    if "ruleId" not in fields:
        errors.append(("ruleId", "is required"))
    else:
        rule_id = optional_uuid(fields["ruleId"], "ruleId", errors)
    if errors:
        raise ValidationFailed(INVALID_REQUEST, errors)
    assert rule_id is not None
    return rule_id
