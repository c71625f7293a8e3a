"""Operation rules: CRUD (seed 004), set-default, and the validate/plan dry run.

Bodies are parsed by `nico.rules.requests` so one 400 names every problem and snake_case
keys work. `/task/rule/validate` is declared before `/task/rule/{id}` so it wins.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api.access import parse_uuid, require_site
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.api.errors import PARSE_FAILED, VALIDATE_FAILED
from nico.api.paging import PageRequest, page_request_ordered, set_pagination_header
from nico.domain import ComponentType, OperationType
from nico.engine.plan import PlanTray, plan_rule
from nico.errors import BadRequest, Conflict, NotFound, ValidationFailed
from nico.rules import requests as rule_requests
from nico.rules.resolution import resolve_rule
from nico.schemas.common import NUL_REFUSED, QueryBool
from nico.schemas.rules import (
    CreateRuleRequest,
    OperationRule,
    SiteRequest,
    UpdateRuleRequest,
    ValidateRuleRequest,
    request_body_schema,
    rule_wire,
)
from nico.store import inventory
from nico.store import rules as rule_store
from nico.store.models import OperationRule as OperationRuleRow
from nico.store.models import Site, Tray

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)

INVALID_RULE_ID = "Invalid Rule ID specified in URL"
RULE_NOT_FOUND = "Rule not found"
BAD_JSON = "Failed to parse request data: body is not valid JSON"
TOO_DEEP = f"{PARSE_FAILED}: body is nested too deeply"
SURROGATE_REFUSED = "must be valid Unicode text (a lone surrogate such as \\ud800 is not)"
# Far beyond a rule's depth (about 6) and far below Python's recursion limit.
MAX_DEPTH = 32
RACK_MISSING = "Rack specified in request does not exist in the Site"

SiteIdQuery = Annotated[
    str | None, Query(description="ID of the Site that owns the rule (rules are site-scoped).")
]


class _NotFinite:
    """Stands in for NaN, Infinity, -Infinity or a number beyond float range while parsing,
    so the 400 can name where it was."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _constant(token: str) -> _NotFinite:
    return _NotFinite(f"{token} is not valid JSON")


def _float(text: str) -> float | _NotFinite:
    number = float(text)
    return number if math.isfinite(number) else _NotFinite("is out of range for a number")


def _text_problem(text: str) -> str | None:
    """Why a string cannot be stored: a NUL (PostgreSQL refuses it in text and JSON) or a
    lone surrogate such as `\\ud800` (no UTF-8 encoding exists, SQLite fails on it)."""
    if "\x00" in text:
        return NUL_REFUSED
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_REFUSED
    return None


def _unstorable(value: Any, path: str, found: list[tuple[str, str]], depth: int = 0) -> None:
    """Values no later read survives: non-finite numbers, strings or keys `_text_problem`
    refuses, and nesting deeper than any rule has (checked here, before a recursive
    reader can fail on it)."""
    if depth > MAX_DEPTH:
        found.append((path or "body", f"is nested deeper than {MAX_DEPTH} levels"))
    elif isinstance(value, _NotFinite):
        found.append((path or "body", value.problem))
    elif isinstance(value, str):
        problem = _text_problem(value)
        if problem:
            found.append((path or "body", problem))
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            problem = _text_problem(key)
            if problem:
                found.append((where.encode("utf-8", "backslashreplace").decode(), problem))
                continue
            _unstorable(item, where, found, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _unstorable(item, f"{path}[{index}]", found, depth + 1)


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The JSON body, 400 when it is not JSON (an empty optional body is `{}`).

    Python's parser takes NaN and Infinity (and reads 1e999 as infinity), which JSON does
    not have; they would pass `< 1` style checks and then fail every later read of the
    stored rule, so they are refused here, by field path, as is a NUL in any string.
    """
    raw = await request.body()
    if not raw.strip():
        if optional:
            return {}
        raise ValidationFailed(rule_requests.INVALID_REQUEST, [("body", "is required")])
    try:
        body = json.loads(raw, parse_constant=_constant, parse_float=_float)
    except ValueError:
        raise BadRequest(BAD_JSON) from None
    except RecursionError:
        raise BadRequest(TOO_DEEP) from None
    found: list[tuple[str, str]] = []
    _unstorable(body, "", found)
    if found:
        raise ValidationFailed(PARSE_FAILED, found)
    return body


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ValidationFailed(rule_requests.INVALID_REQUEST, [("body", "must be an object")])
    return body


async def _rule_in_site(session: AsyncSession, site: Site, rule_id: uuid.UUID) -> OperationRuleRow:
    rule = await rule_store.get_rule(session, site.id, rule_id)
    if rule is None:
        raise NotFound(RULE_NOT_FOUND)
    return rule


def _operation_filter(type_raw: str | None, code_raw: str | None) -> tuple[str | None, str | None]:
    errors: list[tuple[str, str]] = []
    operation_type = None
    if type_raw is not None:
        try:
            operation_type = OperationType.parse(type_raw)
        except ValueError as exc:
            errors.append(("operationType", str(exc)))
    code = None
    if code_raw is not None:
        code = code_raw.strip().lower()
        allowed = (
            operation_type.codes if operation_type else sum((t.codes for t in OperationType), ())
        )
        if code not in allowed:
            errors.append(("operationCode", f"must be one of [{' '.join(allowed)}]"))
    if errors:
        raise ValidationFailed(VALIDATE_FAILED, errors)
    return (operation_type.value if operation_type else None), code


@router.post(
    "/task/rule",
    status_code=201,
    response_model=OperationRule,
    summary="Create an Operation Rule",
    openapi_extra=request_body_schema(CreateRuleRequest),
)
async def create_rule(org: str, request: Request, services: ServicesDep) -> JSONResponse:
    """Validate fully, store, answer the stored rule (real timestamps). With
    `isDefault: true` it replaces the current default in one transaction."""
    body = _object(await read_json(request))
    async with services.db.session() as session:
        site = await require_site(session, org, rule_requests.site_id_of(body), in_body=True)
        parsed = rule_requests.parse_create(body)
        rule = await rule_store.create_rule(
            session,
            site_id=site.id,
            name=parsed.name,
            description=parsed.description,
            operation_type=parsed.operation_type.value,
            operation_code=parsed.operation_code,
            rule_definition=parsed.definition.to_wire(),
            is_default=parsed.is_default,
        )
        await session.refresh(rule)
        return JSONResponse(rule_wire(rule), status_code=201)


@router.get(
    "/task/rule",
    response_model=list[OperationRule],
    summary="List the Site's Operation Rules (newest first)",
)
async def list_rules(
    org: str,
    services: ServicesDep,
    page: Annotated[PageRequest, Depends(page_request_ordered)],
    siteId: SiteIdQuery = None,
    operationType: Annotated[
        str | None, Query(description="PowerControl | FirmwareControl | BringUp")
    ] = None,
    operationCode: Annotated[str | None, Query(description="e.g. power_on, upgrade")] = None,
    isDefault: Annotated[QueryBool | None, Query(description="Only (non-)default rules")] = None,
) -> JSONResponse:
    async def read(session: AsyncSession) -> tuple[JSONResponse, int]:
        site = await require_site(session, org, siteId)
        order = page.order_by(rule_store.ORDER_FIELDS)
        operation_type, code = _operation_filter(operationType, operationCode)
        rows, total = await rule_store.list_rules(
            session,
            site.id,
            rule_store.RuleFilter(operation_type, code, isDefault),
            offset=page.offset,
            limit=page.limit,
            order_field=order.field if order else "created",
            descending=order.descending if order else True,
        )
        return JSONResponse([rule_wire(r) for r in rows]), total

    out, total = await services.db.read_session(read)
    set_pagination_header(out, page, total)
    return out


@router.post(
    "/task/rule/validate",
    summary="Validate a rule definition without storing it; with rackId, plan it",
    openapi_extra=request_body_schema(ValidateRuleRequest),
)
async def validate_rule(org: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """The normalized definition, and with `rackId` the execution plan for that rack:
    stages -> steps -> trays, skipped steps, worst-case duration, warnings. Without a
    definition, plans the rule the rack would run (and says why it was chosen)."""
    body = _object(await read_json(request))
    async with services.db.session() as session:
        site = await require_site(session, org, rule_requests.site_id_of(body), in_body=True)
        parsed = rule_requests.parse_validate(body)
        out: dict[str, Any] = {
            "valid": True,
            "operationType": parsed.operation_type.value,
            "operationCode": parsed.operation_code,
        }
        definition = parsed.definition
        trays: list[PlanTray] = []
        if parsed.rack_id is not None:
            rack = await inventory.get_rack(session, site.id, parsed.rack_id)
            if rack is None:
                raise BadRequest(RACK_MISSING, {"rackId": "does not exist in the site"})
            if definition is None:
                resolved = await resolve_rule(
                    session,
                    site_id=site.id,
                    rack_id=rack.id,
                    operation_type=parsed.operation_type,
                    operation_code=parsed.operation_code,
                    pinned_rule_id=parsed.rule_id,
                )
                definition = resolved.definition
                out["rule"] = {
                    "source": resolved.source,
                    "ruleId": str(resolved.rule_id) if resolved.rule_id else None,
                    "name": resolved.name,
                }
            trays = await _operable_trays(session, rack.id)
            out["rackId"] = str(rack.id)
            out["rackName"] = rack.name
        assert definition is not None
        out["ruleDefinition"] = definition.to_wire()
        out["plan"] = plan_rule(definition, trays) if parsed.rack_id is not None else None
        return out


async def _operable_trays(session: AsyncSession, rack_id: uuid.UUID) -> list[PlanTray]:
    rows = await session.scalars(select(Tray).where(Tray.rack_id == rack_id))
    trays = []
    for tray in rows:
        try:
            kind = ComponentType.parse(tray.type)
        except ValueError:
            continue
        if kind.operable:
            trays.append(PlanTray(id=str(tray.id), name=tray.name or str(tray.id), type=kind))
    return trays


@router.get(
    "/task/rule/{id}",
    response_model=OperationRule,
    summary="Retrieve an Operation Rule",
)
async def get_rule(
    org: str,
    services: ServicesDep,
    id: str,
    siteId: SiteIdQuery = None,
) -> JSONResponse:
    rule_id = parse_uuid(id, INVALID_RULE_ID, "id")

    async def read(session: AsyncSession) -> JSONResponse:
        site = await require_site(session, org, siteId)
        return JSONResponse(rule_wire(await _rule_in_site(session, site, rule_id)))

    return await services.db.read_session(read)


@router.patch(
    "/task/rule/{id}",
    status_code=204,
    summary="Update an Operation Rule's name, description or definition",
    openapi_extra=request_body_schema(UpdateRuleRequest),
)
async def update_rule(org: str, id: str, request: Request, services: ServicesDep) -> Response:
    """Operation type and code are immutable (400 if sent); the definition is re-validated."""
    rule_id = parse_uuid(id, INVALID_RULE_ID, "id")
    body = _object(await read_json(request))
    async with services.db.session() as session:
        site = await require_site(session, org, rule_requests.site_id_of(body), in_body=True)
        rule = await _rule_in_site(session, site, rule_id)
        parsed = rule_requests.parse_update(
            body, OperationType.parse(rule.operation_type), rule.operation_code
        )
        changes: dict[str, Any] = {}
        if parsed.name is not None:
            changes["name"] = parsed.name
        if parsed.description is not None:
            changes["description"] = parsed.description
        if parsed.definition is not None:
            changes["rule_definition"] = parsed.definition.to_wire()
        await rule_store.update_rule(session, rule, changes)
    return Response(status_code=204)


@router.delete("/task/rule/{id}", status_code=204, summary="Delete an Operation Rule")
async def delete_rule(
    org: str,
    id: str,
    services: ServicesDep,
    siteId: SiteIdQuery = None,
    force: Annotated[
        QueryBool, Query(description="Also delete a default or rack-associated rule")
    ] = False,
) -> Response:
    """409 while the rule is the default or pinned to racks, unless `force=true` (then
    resolution falls back to the next source)."""
    rule_id = parse_uuid(id, INVALID_RULE_ID, "id")
    async with services.db.session() as session:
        site = await require_site(session, org, siteId)
        rule = await _rule_in_site(session, site, rule_id)
        if not force:
            reasons = []
            if rule.is_default:
                reasons.append(
                    f"it is the default {rule.operation_type}/{rule.operation_code} rule"
                )
            racks = await rule_store.racks_using(session, rule.id)
            if racks:
                reasons.append(f"it is associated with rack(s) {', '.join(racks)}")
            if reasons:
                raise Conflict(
                    f"Rule cannot be deleted: {'; '.join(reasons)}. Set another default or "
                    "remove the associations first, or pass force=true",
                    {"isDefault": rule.is_default, "racks": list(racks)},
                )
        await rule_store.delete_rule(session, rule)
    return Response(status_code=204)


@router.post(
    "/task/rule/{id}/default",
    response_model=OperationRule,
    summary="Make a rule the default for its operation type and code (atomic swap)",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": SiteRequest.model_json_schema()},
            },
        }
    },
)
async def set_default_rule(
    org: str,
    id: str,
    request: Request,
    services: ServicesDep,
    siteId: SiteIdQuery = None,
) -> JSONResponse:
    """`siteId` in the query or the body. The previous default stays as a plain rule."""
    rule_id = parse_uuid(id, INVALID_RULE_ID, "id")
    body = _object(await read_json(request, optional=True))
    site_ref = siteId if siteId is not None else rule_requests.site_id_of(body)
    async with services.db.session() as session:
        site = await require_site(session, org, site_ref)
        rule = await _rule_in_site(session, site, rule_id)
        updated = await rule_store.set_default(session, rule)
        if updated is None:
            raise NotFound(RULE_NOT_FOUND)
        return JSONResponse(rule_wire(updated))
