"""Installs the built-in rules as a site's default rules (on site creation and seeding)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession


async def install_builtin_defaults(session: AsyncSession, site_id: uuid.UUID) -> None:
    """Store the built-in rule of every operation code as the site's default (idempotent).

    Placeholder until the rules work (issue 3) lands; callers may rely on the signature.
    """
    del session, site_id
