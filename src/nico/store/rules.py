"""Operation rules and rack associations: queries and the atomic set-default swap.

The swap first takes the site's row lock (PostgreSQL `FOR UPDATE`; on SQLite the first
write already holds the database write lock), so concurrent swaps for one site run one
after another and the partial unique index never sees two defaults.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nico.store.models import OperationRule, Rack, RackRuleAssociation, Site, utcnow


@dataclass(frozen=True)
class RuleFilter:
    operation_type: str | None = None
    operation_code: str | None = None
    is_default: bool | None = None


async def get_rule(
    session: AsyncSession, site_id: uuid.UUID, rule_id: uuid.UUID
) -> OperationRule | None:
    """The rule if it belongs to the site (another site's rule is as good as absent)."""
    rule = await session.get(OperationRule, rule_id, populate_existing=True)
    if rule is None or rule.site_id != site_id:
        return None
    return rule


def _filtered(site_id: uuid.UUID, filters: RuleFilter) -> Select[OperationRule]:
    query = select(OperationRule).where(OperationRule.site_id == site_id)
    if filters.operation_type is not None:
        query = query.where(OperationRule.operation_type == filters.operation_type)
    if filters.operation_code is not None:
        query = query.where(OperationRule.operation_code == filters.operation_code)
    if filters.is_default is not None:
        query = query.where(OperationRule.is_default.is_(filters.is_default))
    return query


_ORDER_COLUMNS = {
    "created": OperationRule.created,
    "updated": OperationRule.updated,
    "name": OperationRule.name,
}
ORDER_FIELDS = tuple(_ORDER_COLUMNS)


async def list_rules(
    session: AsyncSession,
    site_id: uuid.UUID,
    filters: RuleFilter,
    *,
    offset: int,
    limit: int,
    order_field: str = "created",
    descending: bool = True,
) -> tuple[list[OperationRule], int]:
    """One page of the site's rules and the total after filters; id breaks ties."""
    query = _filtered(site_id, filters)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    column = _ORDER_COLUMNS[order_field]
    order = (
        (column.desc(), OperationRule.id.desc())
        if descending
        else (column.asc(), OperationRule.id.asc())
    )
    rows = await session.scalars(query.order_by(*order).offset(offset).limit(limit))
    return list(rows), int(total or 0)


async def all_rules(session: AsyncSession, site_id: uuid.UUID) -> list[OperationRule]:
    rows = await session.scalars(
        _filtered(site_id, RuleFilter()).order_by(OperationRule.created, OperationRule.id)
    )
    return list(rows)


async def create_rule(
    session: AsyncSession,
    *,
    site_id: uuid.UUID,
    name: str,
    description: str,
    operation_type: str,
    operation_code: str,
    rule_definition: dict[str, Any],
    is_default: bool = False,
) -> OperationRule:
    """Insert a rule; with `is_default` it atomically replaces the current default."""
    if is_default:
        await _lock_site(session, site_id)
    now = utcnow()
    rule = OperationRule(
        id=uuid.uuid4(),
        site_id=site_id,
        name=name,
        description=description,
        operation_type=operation_type,
        operation_code=operation_code,
        rule_definition=rule_definition,
        is_default=False,
        created=now,
        updated=now,
    )
    session.add(rule)
    await session.flush()
    if is_default:
        await _swap_default(session, rule)
    return rule


async def update_rule(
    session: AsyncSession, rule: OperationRule, changes: dict[str, Any]
) -> OperationRule:
    """Apply name/description/rule_definition changes and bump `updated`."""
    for key, value in changes.items():
        setattr(rule, key, value)
    rule.updated = utcnow()
    await session.flush()
    return rule


async def delete_rule(session: AsyncSession, rule: OperationRule) -> None:
    """Hard delete; rack associations go with it (FK cascade)."""
    await session.execute(delete(RackRuleAssociation).where(RackRuleAssociation.rule_id == rule.id))
    await session.execute(delete(OperationRule).where(OperationRule.id == rule.id))


async def _lock_site(session: AsyncSession, site_id: uuid.UUID) -> None:
    # FOR NO KEY UPDATE: serializes swaps without blocking inserts that reference the site.
    await session.execute(select(Site.id).where(Site.id == site_id).with_for_update(key_share=True))


async def set_default(session: AsyncSession, rule: OperationRule) -> OperationRule | None:
    """Make `rule` its (site, type, code) default, clearing the old one; None if it vanished."""
    await _lock_site(session, rule.site_id)
    if not await _swap_default(session, rule):
        return None
    await session.refresh(rule)
    return rule


async def _swap_default(session: AsyncSession, rule: OperationRule) -> bool:
    now = utcnow()
    await session.execute(
        update(OperationRule)
        .where(
            OperationRule.site_id == rule.site_id,
            OperationRule.operation_type == rule.operation_type,
            OperationRule.operation_code == rule.operation_code,
            OperationRule.is_default.is_(True),
            OperationRule.id != rule.id,
        )
        .values(is_default=False, updated=now)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(OperationRule)
        .where(OperationRule.id == rule.id, OperationRule.is_default.is_(False))
        .values(is_default=True, updated=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount == 1:
        return True
    # Already the default (idempotent) or deleted meanwhile.
    still = await session.scalar(select(OperationRule.id).where(OperationRule.id == rule.id))
    return still is not None


async def get_default(
    session: AsyncSession, site_id: uuid.UUID, operation_type: str, operation_code: str
) -> OperationRule | None:
    return await session.scalar(
        select(OperationRule).where(
            OperationRule.site_id == site_id,
            OperationRule.operation_type == operation_type,
            OperationRule.operation_code == operation_code,
            OperationRule.is_default.is_(True),
        )
    )


async def default_keys(session: AsyncSession, site_id: uuid.UUID) -> set[tuple[str, str]]:
    """(type, code) pairs that already have a default in the site."""
    rows = await session.execute(
        select(OperationRule.operation_type, OperationRule.operation_code).where(
            OperationRule.site_id == site_id, OperationRule.is_default.is_(True)
        )
    )
    return {(t, c) for t, c in rows}


# --- rack associations ------------------------------------------------------------------


async def get_association(
    session: AsyncSession, rack_id: uuid.UUID, operation_type: str, operation_code: str
) -> RackRuleAssociation | None:
    return await session.get(
        RackRuleAssociation, (rack_id, operation_type, operation_code), populate_existing=True
    )


async def rack_associations(
    session: AsyncSession, rack_ids: Sequence[uuid.UUID], operation_type: str, operation_code: str
) -> dict[uuid.UUID, OperationRule]:
    """The rule pinned to each of the racks for (type, code) that has one and whose rule
    still exists, in one query whatever the number of racks."""
    result = await session.execute(
        select(RackRuleAssociation.rack_id, OperationRule)
        .join(OperationRule, OperationRule.id == RackRuleAssociation.rule_id)
        .where(
            RackRuleAssociation.rack_id.in_(rack_ids),
            RackRuleAssociation.operation_type == operation_type,
            RackRuleAssociation.operation_code == operation_code,
        )
        .execution_options(populate_existing=True)
    )
    return {rack_id: rule for rack_id, rule in result.all()}


async def associate(session: AsyncSession, rack_id: uuid.UUID, rule: OperationRule) -> None:
    """Pin `rule` to the rack for the rule's (type, code), replacing any earlier pin."""
    existing = await get_association(session, rack_id, rule.operation_type, rule.operation_code)
    if existing is None:
        session.add(
            RackRuleAssociation(
                rack_id=rack_id,
                operation_type=rule.operation_type,
                operation_code=rule.operation_code,
                rule_id=rule.id,
            )
        )
    else:
        existing.rule_id = rule.id
        existing.updated = utcnow()
    await session.flush()


async def disassociate(
    session: AsyncSession, rack_id: uuid.UUID, operation_type: str, operation_code: str
) -> bool:
    result = await session.execute(
        delete(RackRuleAssociation).where(
            RackRuleAssociation.rack_id == rack_id,
            RackRuleAssociation.operation_type == operation_type,
            RackRuleAssociation.operation_code == operation_code,
        )
    )
    assert isinstance(result, CursorResult)
    return result.rowcount > 0


async def racks_using(session: AsyncSession, rule_id: uuid.UUID) -> Sequence[str]:
    """Names of the racks the rule is associated with (for the deletion guard)."""
    rows = await session.scalars(
        select(Rack.name)
        .join(RackRuleAssociation, RackRuleAssociation.rack_id == Rack.id)
        .where(RackRuleAssociation.rule_id == rule_id)
        .order_by(Rack.name)
    )
    return list(rows)
