"""Request dependencies: services, the verified caller, org role, strict query params."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from nico.auth.principal import Principal
from nico.auth.tokens import bearer_token
from nico.errors import BadRequest, Forbidden
from nico.schemas.common import NUL_REFUSED
from nico.services import Services

UNKNOWN_QUERY = "Unknown query parameter specified in request: {}"
BAD_QUERY_VALUE = "Invalid value specified for `{}` query param"
INVALID_ORG = "Invalid org specified in URL"
# The longest org the providers and idempotency-key tables hold.
ORG_MAX = 128


async def get_services(request: Request) -> Services:
    """Async so FastAPI calls it in the event loop, not through a worker thread."""
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
    request: Request,
) -> Principal:
    """403 unless the caller is a member of the org with a *PROVIDER_ADMIN role."""
    org = org.lower()
    if principal.roles_in(org) is None:
        raise Forbidden(f"Failed to validate membership for org: {org}")
    if not principal.is_provider_admin(org):
        raise Forbidden("User does not have Provider Admin role with org")
    # After the role checks, so a stranger learns nothing about the org from a 400.
    if len(org) > ORG_MAX:
        raise BadRequest(INVALID_ORG, {"org": f"must be at most {ORG_MAX} characters"})
    if "\x00" in org:
        raise BadRequest(INVALID_ORG, {"org": NUL_REFUSED})
    request.state.principal = principal  # see `caller_subject`
    return principal


def caller_subject(request: Request) -> str | None:
    """The verified caller's token subject (what a task records as `createdBy`), set by
    the router dependencies every NICo route runs."""
    principal = getattr(request.state, "principal", None)
    return principal.subject if isinstance(principal, Principal) else None


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


async def check_query_params(request: Request) -> None:
    """400 for a query parameter the endpoint does not declare, or a value with a NUL
    (PostgreSQL refuses one even in a lookup); runs after auth."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _allowed_query_names(route)
    for name in request.query_params:
        if name not in allowed:
            raise BadRequest(UNKNOWN_QUERY.format(name))
    for name, value in request.query_params.multi_items():
        if "\x00" in value:
            raise BadRequest(BAD_QUERY_VALUE.format(name), {name: NUL_REFUSED})


# Every NICo router uses these, in this order: authenticate, authorize, strict query.
NICO_ROUTER_DEPENDENCIES = [
    Depends(require_provider_admin),
    Depends(check_query_params),
]
