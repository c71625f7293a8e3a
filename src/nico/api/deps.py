"""Request dependencies: services, the verified caller, org role, strict query params."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from nico.auth.principal import Principal
from nico.auth.tokens import bearer_token
from nico.errors import BadRequest, Forbidden
from nico.services import Services

UNKNOWN_QUERY = "Unknown query parameter specified in request: {}"


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(
    services: ServicesDep,
    authorization: Annotated[
        str | None, Header(include_in_schema=False, alias="Authorization")
    ] = None,
) -> Principal:
    """401 unless the bearer token verifies."""
    return await services.verifier.verify(bearer_token(authorization))


async def require_provider_admin(
    principal: Annotated[Principal, Depends(get_principal)],
    org: Annotated[str, Path(description="Name of the Org")],
) -> Principal:
    """403 unless the caller is a member of the org with a *PROVIDER_ADMIN role."""
    org = org.lower()
    if principal.roles_in(org) is None:
        raise Forbidden(f"Failed to validate membership for org: {org}")
    if not principal.is_provider_admin(org):
        raise Forbidden("User does not have Provider Admin role with org")
    return principal


AdminDep = Annotated[Principal, Depends(require_provider_admin)]

_ALLOWED_QUERY: dict[int, frozenset[str]] = {}


def _allowed_query_names(route: APIRoute) -> frozenset[str]:
    key = id(route)
    if key not in _ALLOWED_QUERY:
        _ALLOWED_QUERY[key] = frozenset(_query_aliases(route.dependant))
    return _ALLOWED_QUERY[key]


def _query_aliases(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_aliases(sub)
    return names


async def reject_unknown_query_params(request: Request) -> None:
    """400 for a query parameter the endpoint does not declare (runs after auth)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _allowed_query_names(route)
    for name in request.query_params:
        if name not in allowed:
            raise BadRequest(UNKNOWN_QUERY.format(name))


# Every NICo router uses these, in this order: authenticate, authorize, strict query.
NICO_ROUTER_DEPENDENCIES = [
    Depends(require_provider_admin),
    Depends(reject_unknown_query_params),
]
