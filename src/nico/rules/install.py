"""Installs the built-in rules as a site's default rules (on site creation and seeding)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from nico.rules.builtins import BUILTIN_RULES
from nico.store import rules as rule_store


async def install_builtin_defaults(session: AsyncSession, site_id: uuid.UUID) -> None:
    """Store the built-in rule of every operation code as the site's default (idempotent).

    A (type, code) that already has a default keeps it, so re-running never duplicates
    rules or overrides an operator's choice.
    """
    present = await rule_store.default_keys(session, site_id)
    for (operation_type, code), builtin in BUILTIN_RULES.items():
        if (operation_type.value, code) in present:
            continue
        await rule_store.create_rule(
            session,
            site_id=site_id,
            name=builtin.name,
            description=builtin.description,
            operation_type=operation_type.value,
            operation_code=code,
            rule_definition=builtin.definition.to_wire(),
            is_default=True,
        )
