"""GET /infrastructure-provider/current: the caller's org provider, created on first call."""

from __future__ import annotations

from fastapi import APIRouter

from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.schemas.provider import InfrastructureProvider
from nico.store import inventory

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)


@router.get(
    "/infrastructure-provider/current",
    response_model=InfrastructureProvider,
    summary="Retrieve the org's Infrastructure Provider (created on first call)",
)
async def get_current_provider(org: str, services: ServicesDep) -> InfrastructureProvider:
    async with services.db.session() as session:
        provider = await inventory.get_or_create_provider(session, org)
        return InfrastructureProvider.model_validate(provider)
