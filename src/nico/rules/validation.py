"""Rule definition validation for the API and the engine: a thin view of the rule model
(`nico.rules.schema`), which checks everything and names every problem by field path.

The result is the engine's typed view (`nico.rules.model`), whose `to_wire()` is the
normalized camelCase form that gets stored. `object_fields` checks the keys of a request
body around the definition the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nico.domain import OperationType
from nico.errors import ValidationFailed
from nico.rules.actions import snake
from nico.rules.model import RuleDefinition
from nico.rules.schema import Errors, check_definition

INVALID_DEFINITION = "Failed to validate rule definition"


def validate_rule_definition(
    raw: Any,
    *,
    operation_type: OperationType,
    operation_code: str,
    path_prefix: str = "ruleDefinition",
) -> RuleDefinition:
    """The typed definition, or ValidationFailed listing every problem by field path."""
    wire, errors = check_rule_definition(
        raw, operation_type=operation_type, operation_code=operation_code, path=path_prefix
    )
    if errors or wire is None:
        raise ValidationFailed(INVALID_DEFINITION, errors)
    return RuleDefinition.from_wire(wire)


def check_rule_definition(
    raw: Any,
    *,
    operation_type: OperationType | None,
    operation_code: str | None,
    path: str = "ruleDefinition",
) -> tuple[dict[str, Any] | None, Errors]:
    """Normalized camelCase wire dict (None when invalid) and every problem found, as
    the rule model (`nico.rules.schema`) reports them.

    `operation_type` None (the type itself was invalid) skips the checks that depend on
    it; `operation_code` is accepted for code-specific checks and currently needs none.
    """
    del operation_code
    model, errors = check_definition(raw, operation_type=operation_type, path=path)
    if model is None:
        return None, errors
    return RuleDefinition.from_wire(model.wire()).to_wire(), errors


def object_fields(
    raw: Any, keys: tuple[str, ...], path: str, errors: Errors
) -> dict[str, Any] | None:
    """Map camelCase and snake_case keys to the canonical camelCase; flag unknown ones.

    A null value counts as absent. `path` "" is the request body itself.
    """
    if not isinstance(raw, Mapping):
        errors.append((path or "body", "must be an object"))
        return None
    by_spelling = {k: k for k in keys} | {snake(k): k for k in keys}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        canonical = by_spelling.get(str(key))
        if canonical is None:
            errors.append((where, f"is not a known field ({', '.join(keys)})"))
        elif canonical in out:
            errors.append((where, f"{canonical} is given twice"))
        elif value is not None:
            out[canonical] = value
    return out
