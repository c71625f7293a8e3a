"""Queries for providers, sites, racks and trays."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nico.store.models import Provider, Site


async def get_provider(session: AsyncSession, org: str) -> Provider | None:
    result = await session.execute(select(Provider).where(Provider.org == org.lower()))
    return result.scalar_one_or_none()


async def get_site(session: AsyncSession, site_id: uuid.UUID) -> Site | None:
    return await session.get(Site, site_id)


async def get_or_create_provider(session: AsyncSession, org: str) -> Provider:
    """The org's provider, created on first use (one per org)."""
    provider = await get_provider(session, org)
    if provider is None:
        provider = Provider(org=org.lower(), name=org.lower())
        session.add(provider)
        await session.flush()
    return provider
