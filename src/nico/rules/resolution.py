"""Which rule an operation runs: pinned id -> rack association -> site default -> built-in."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from nico.domain import OperationType
from nico.errors import BadRequest
from nico.rules.builtins import builtin_rule
from nico.rules.model import RuleDefinition
from nico.store import rules as rule_store
from nico.store.models import OperationRule

RuleSource = Literal["pinned", "rack", "default", "builtin"]

PINNED_MISSING = "Rule specified in request does not exist in the Site"


@dataclass(frozen=True)
class ResolvedRule:
    """The definition to run, the stored rule's id (None for a built-in) and why."""

    definition: RuleDefinition
    rule_id: uuid.UUID | None
    source: RuleSource
    name: str = ""


def _resolved(rule: OperationRule, source: RuleSource) -> ResolvedRule:
    return ResolvedRule(
        definition=RuleDefinition.from_wire(rule.rule_definition),
        rule_id=rule.id,
        source=source,
        name=rule.name,
    )


def check_pinned(rule: OperationRule | None, operation_type: OperationType, code: str) -> None:
    """400 naming `ruleId` unless the pinned rule exists and fits the operation."""
    if rule is None:
        raise BadRequest(PINNED_MISSING, {"ruleId": "does not exist in the site"})
    if rule.operation_type != operation_type.value or rule.operation_code != code:
        detail = (
            f"is a {rule.operation_type}/{rule.operation_code} rule; "
            f"this operation needs {operation_type.value}/{code}"
        )
        raise BadRequest(
            f"Rule specified in request does not fit the operation: {detail}", {"ruleId": detail}
        )


async def resolve_rule(
    session: AsyncSession,
    *,
    site_id: uuid.UUID,
    rack_id: uuid.UUID,
    operation_type: OperationType | str,
    operation_code: str,
    pinned_rule_id: uuid.UUID | None,
) -> ResolvedRule:
    """Resolve at dispatch; the result is snapshotted into the task."""
    operation_type = OperationType.parse(operation_type)
    if pinned_rule_id is not None:
        pinned = await rule_store.get_rule(session, site_id, pinned_rule_id)
        check_pinned(pinned, operation_type, operation_code)
        assert pinned is not None
        return _resolved(pinned, "pinned")
    association = await rule_store.get_association(
        session, rack_id, operation_type.value, operation_code
    )
    if association is not None:
        rule = await rule_store.get_rule(session, site_id, association.rule_id)
        if rule is not None:
            return _resolved(rule, "rack")
    default = await rule_store.get_default(session, site_id, operation_type.value, operation_code)
    if default is not None:
        return _resolved(default, "default")
    builtin = builtin_rule(operation_type, operation_code)
    return ResolvedRule(
        definition=builtin.definition, rule_id=None, source="builtin", name=builtin.name
    )


async def resolve_rules(
    session: AsyncSession,
    *,
    site_id: uuid.UUID,
    rack_ids: Sequence[uuid.UUID],
    operation_type: OperationType | str,
    operation_code: str,
    pinned_rule_id: uuid.UUID | None,
) -> dict[uuid.UUID, ResolvedRule]:
    """`resolve_rule` for many racks of one site in a fixed number of queries (a bulk
    submission of 100 racks must not cost 300 round trips). Same order of precedence;
    a rack association whose rule is gone falls through to the default, as there."""
    operation_type = OperationType.parse(operation_type)
    if pinned_rule_id is not None:
        pinned = await rule_store.get_rule(session, site_id, pinned_rule_id)
        check_pinned(pinned, operation_type, operation_code)
        assert pinned is not None
        one = _resolved(pinned, "pinned")
        return {rack_id: one for rack_id in rack_ids}
    by_rack = await rule_store.rack_associations(
        session, rack_ids, operation_type.value, operation_code
    )
    out = {
        rack_id: _resolved(rule, "rack")
        for rack_id, rule in by_rack.items()
        if rule.site_id == site_id
    }
    if len(out) == len(set(rack_ids)):
        return out
    default = await rule_store.get_default(session, site_id, operation_type.value, operation_code)
    if default is not None:
        fallback = _resolved(default, "default")
    else:
        builtin = builtin_rule(operation_type, operation_code)
        fallback = ResolvedRule(
            definition=builtin.definition, rule_id=None, source="builtin", name=builtin.name
        )
    return {rack_id: out.get(rack_id, fallback) for rack_id in rack_ids}
