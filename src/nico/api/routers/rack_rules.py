"""Rack rule associations: which rule a rack runs for one (type, code), and why.

GET answers the effective rule (rack association, else site default, else built-in) so
an operator can see why an operation picks the rule it does.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api.access import parse_uuid, require_site
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.api.errors import VALIDATE_FAILED
from nico.api.routers.rules import _object, read_json
from nico.domain import OperationType
from nico.errors import NotFound, ValidationFailed
from nico.rules import requests as rule_requests
from nico.rules.resolution import check_pinned, resolve_rule
from nico.schemas.rules import RackRule, RackRuleRequest, request_body_schema
from nico.store import inventory
from nico.store import rules as rule_store
from nico.store.models import Rack, Site

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)

INVALID_RACK_ID = "Invalid Rack ID specified in URL"
RACK_NOT_FOUND = "Rack not found"
PATH = "/rack/{id}/rule/{operationType}/{operationCode}"

SiteIdQuery = Annotated[str | None, Query(description="ID of the Site that owns the rack.")]


def _operation(type_raw: str, code_raw: str) -> tuple[OperationType, str]:
    errors: list[tuple[str, str]] = []
    operation_type, code = rule_requests.check_operation(
        type_raw, code_raw, errors, type_path="operationType", code_path="operationCode"
    )
    if errors:
        raise ValidationFailed(VALIDATE_FAILED, errors)
    assert operation_type is not None and code is not None
    return operation_type, code


async def _rack(session: AsyncSession, site: Site, rack_id: uuid.UUID) -> Rack:
    rack = await inventory.get_rack(session, site.id, rack_id)
    if rack is None:
        raise NotFound(RACK_NOT_FOUND)
    return rack


async def _effective(
    session: AsyncSession, site: Site, rack: Rack, operation_type: OperationType, code: str
) -> dict[str, Any]:
    resolved = await resolve_rule(
        session,
        site_id=site.id,
        rack_id=rack.id,
        operation_type=operation_type,
        operation_code=code,
        pinned_rule_id=None,
    )
    return {
        "rackId": str(rack.id),
        "operationType": operation_type.value,
        "operationCode": code,
        "source": resolved.source,
        "ruleId": str(resolved.rule_id) if resolved.rule_id else None,
        "ruleName": resolved.name,
        "ruleDefinition": resolved.definition.to_wire(),
    }


@router.get(PATH, response_model=RackRule, summary="The rule a rack runs for an operation")
async def get_rack_rule(
    org: str,
    id: str,
    operationType: str,
    operationCode: str,
    services: ServicesDep,
    siteId: SiteIdQuery = None,
) -> JSONResponse:
    """`source` says why: `rack` (associated), `default` (site default) or `builtin`."""
    rack_id = parse_uuid(id, INVALID_RACK_ID, "id")
    operation_type, code = _operation(operationType, operationCode)

    async def read(session: AsyncSession) -> JSONResponse:
        site = await require_site(session, org, siteId)
        rack = await _rack(session, site, rack_id)
        return JSONResponse(await _effective(session, site, rack, operation_type, code))

    return await services.db.read_session(read)


@router.put(
    PATH,
    response_model=RackRule,
    summary="Associate a rule with a rack for one operation (replaces an earlier one)",
    openapi_extra=request_body_schema(RackRuleRequest),
)
async def put_rack_rule(
    org: str,
    id: str,
    operationType: str,
    operationCode: str,
    request: Request,
    services: ServicesDep,
) -> JSONResponse:
    """The rule must belong to the site and be of the path's type and code (400 naming
    `ruleId` otherwise)."""
    rack_id = parse_uuid(id, INVALID_RACK_ID, "id")
    operation_type, code = _operation(operationType, operationCode)
    body = _object(await read_json(request))
    async with services.db.session() as session:
        site = await require_site(session, org, rule_requests.site_id_of(body), in_body=True)
        rack = await _rack(session, site, rack_id)
        rule_id = rule_requests.parse_rule_id(body)
        rule = await rule_store.get_rule(session, site.id, rule_id)
        check_pinned(rule, operation_type, code)
        assert rule is not None
        await rule_store.associate(session, rack.id, rule)
        return JSONResponse(await _effective(session, site, rack, operation_type, code))


@router.delete(PATH, status_code=204, summary="Remove a rack's rule association")
async def delete_rack_rule(
    org: str,
    id: str,
    operationType: str,
    operationCode: str,
    services: ServicesDep,
    siteId: SiteIdQuery = None,
) -> Response:
    """Idempotent: 204 whether or not an association existed; the rack then runs the
    site default (or the built-in)."""
    rack_id = parse_uuid(id, INVALID_RACK_ID, "id")
    operation_type, code = _operation(operationType, operationCode)
    async with services.db.session() as session:
        site = await require_site(session, org, siteId)
        rack = await _rack(session, site, rack_id)
        await rule_store.disassociate(session, rack.id, operation_type.value, code)
    return Response(status_code=204)
