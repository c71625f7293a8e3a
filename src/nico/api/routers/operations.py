"""Power, firmware and bring-up of racks and trays: each answers `{"taskIds":[...]}`, one
task per rack, and runs as a durable workflow.

Unlike upstream these endpoints apply the Flow gate (412) like every other site-scoped
call: a site without Flow has no rules and no task engine to run them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api.access import parse_uuid, require_site
from nico.api.body_errors import SummarizedRoute, validation_summary
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.domain import OperationType
from nico.errors import ValidationFailed
from nico.schemas.operations import (
    FIRMWARE_TARGETS,
    BatchBringUpRequest,
    BatchRackFirmwareRequest,
    BatchRackPowerRequest,
    BatchTrayFirmwareRequest,
    BatchTrayPowerRequest,
    BringUpRequest,
    FirmwareFields,
    FirmwareRequest,
    OperationOptions,
    PowerRequest,
    RackFilter,
    TaskIds,
    TrayFilter,
    scope_errors,
)
from nico.services import Services
from nico.tasks import idempotency, manager, targets
from nico.tasks.targets import RackTargets

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES, route_class=SummarizedRoute)

POWER_FAILED = "Failed to validate power control request data"
FIRMWARE_FAILED = "Failed to validate firmware update request data"
BRING_UP_FAILED = "Failed to validate bring up request data"
BATCH_FAILED = "Failed to validate request data"
INVALID_RACK_ID = "Invalid Rack ID specified in URL"
INVALID_TRAY_ID = "Invalid Tray ID specified in URL"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="Client key making a retried request return the first request's "
        "taskIds instead of starting new tasks (scoped to the org; reusing it with a "
        "different body is 409).",
    ),
]


def _check(summary: str, errors: list[tuple[str, str]]) -> None:
    if errors:
        raise ValidationFailed(summary, errors)


def _rack_selection(flt: RackFilter | None, all_flag: bool | None) -> list[str] | None:
    names = list(flt.names or []) if flt is not None else []
    _check(BATCH_FAILED, scope_errors(not names, all_flag))
    return names or None


def _tray_selection(flt: TrayFilter | None, all_flag: bool | None) -> targets.TraySelector | None:
    empty = flt is None or flt.is_empty()
    _check(BATCH_FAILED, scope_errors(empty, all_flag))
    return None if flt is None or empty else flt.selector(BATCH_FAILED)


def _narrow_to_firmware_targets(
    fields: FirmwareFields, groups: list[RackTargets]
) -> list[RackTargets]:
    """Keep only trays that have a named firmware component; 400 if none is left."""
    kinds = fields.target_types()
    if kinds is None:
        return groups
    narrowed = [RackTargets(g.rack, tuple(t for t in g.trays if t.type in kinds)) for g in groups]
    narrowed = [g for g in narrowed if g.trays]
    if groups and not narrowed:
        present = sorted({t.type for g in groups for t in g.trays})
        applicable = sorted(
            {n for kind, names in FIRMWARE_TARGETS.items() if kind.value in present for n in names}
        )
        raise ValidationFailed(
            FIRMWARE_FAILED,
            [
                (
                    "targets",
                    f"none of the targeted trays ({', '.join(present)}) has these components; "
                    f"they have: {', '.join(applicable)}",
                )
            ],
        )
    return narrowed


Selector = Callable[[AsyncSession, uuid.UUID], Awaitable[list[RackTargets]]]


async def _run(
    services: Services,
    request: Request,
    org: str,
    body: OperationOptions,
    *,
    summary: str,
    operation_type: OperationType,
    code: str,
    description: str,
    info: dict[str, Any],
    select: Selector,
    key: str | None,
) -> TaskIds:
    """Guard the site, replay a known Idempotency-Key, pick the targets, submit."""
    _check(summary, body.option_errors())
    claim = idempotency.claim_for(
        org, key, request.method, request.url.path, body.model_dump(mode="json")
    )
    async with services.db.session() as session:
        site = await require_site(session, org, body.site_id, in_body=True)
        replayed = await idempotency.replay(session, claim) if claim is not None else None
        if replayed is not None:
            return TaskIds(task_ids=replayed)
        groups = await select(session, site.id)
        if not groups:
            # A slot filter that matches nothing: nothing to run (upstream answers []).
            if claim is not None:
                await idempotency.remember(session, claim, [])
            return TaskIds(task_ids=[])
    operation = manager.OperationRequest(
        site_id=site.id,
        operation_type=operation_type,
        operation_code=code,
        description=body.description or description,
        info=info,
        pinned_rule_id=body.rule_id,
        strategy=body.strategy(),
        queue_timeout=body.queue_timeout_seconds(),
    )
    return TaskIds(task_ids=await manager.submit(services, operation, groups, claim))


# --- power -------------------------------------------------------------------------------


def _power_description(state: str, what: str) -> str:
    return f"API power {state} {what}"


@router.patch(
    "/rack/{id}/power",
    response_model=TaskIds,
    summary="Power-control one rack (every Compute, NVLSwitch and PowerShelf tray)",
)
@validation_summary(POWER_FAILED)
async def power_rack(
    org: str,
    id: str,
    body: Annotated[PowerRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    rack_id = parse_uuid(id, INVALID_RACK_ID, "id")

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return [await targets.rack_by_id(session, site_id, rack_id)]

    return await _run(
        services,
        request,
        org,
        body,
        summary=POWER_FAILED,
        operation_type=OperationType.POWER_CONTROL,
        code=body.operation_code(),
        description=_power_description(body.state, "Rack"),
        info={"state": body.state},
        select=select,
        key=idempotency_key,
    )


@router.patch(
    "/rack/power",
    response_model=TaskIds,
    summary="Power-control racks by name, or every rack of the site with all=true",
)
@validation_summary(BATCH_FAILED)
async def power_racks(
    org: str,
    body: Annotated[BatchRackPowerRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    names = _rack_selection(body.filter, body.all)

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return await targets.racks_by_names(session, site_id, names)

    return await _run(
        services,
        request,
        org,
        body,
        summary=BATCH_FAILED,
        operation_type=OperationType.POWER_CONTROL,
        code=body.operation_code(),
        description=_power_description(body.state, "Racks"),
        info={"state": body.state},
        select=select,
        key=idempotency_key,
    )


@router.patch(
    "/tray/{id}/power",
    response_model=TaskIds,
    summary="Power-control one tray",
)
@validation_summary(POWER_FAILED)
async def power_tray(
    org: str,
    id: str,
    body: Annotated[PowerRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    tray_id = parse_uuid(id, INVALID_TRAY_ID, "id")

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return [await targets.tray_by_id(session, site_id, tray_id)]

    return await _run(
        services,
        request,
        org,
        body,
        summary=POWER_FAILED,
        operation_type=OperationType.POWER_CONTROL,
        code=body.operation_code(),
        description=_power_description(body.state, "Tray"),
        info={"state": body.state},
        select=select,
        key=idempotency_key,
    )


@router.patch(
    "/tray/power",
    response_model=TaskIds,
    summary="Power-control trays picked by a filter (one task per rack)",
)
@validation_summary(BATCH_FAILED)
async def power_trays(
    org: str,
    body: Annotated[BatchTrayPowerRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    selector = _tray_selection(body.filter, body.all)

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return await targets.trays_by_selector(session, site_id, selector)

    return await _run(
        services,
        request,
        org,
        body,
        summary=BATCH_FAILED,
        operation_type=OperationType.POWER_CONTROL,
        code=body.operation_code(),
        description=_power_description(body.state, "Trays"),
        info={"state": body.state},
        select=select,
        key=idempotency_key,
    )


# --- firmware ----------------------------------------------------------------------------


def _firmware_description(fields: FirmwareFields, what: str) -> str:
    to = f" to {fields.version}" if fields.version else ""
    return f"API firmware {fields.code()} {what}{to}"


@router.patch(
    "/rack/{id}/firmware",
    response_model=TaskIds,
    summary="Update the firmware of one rack's trays",
)
@validation_summary(FIRMWARE_FAILED)
async def firmware_rack(
    org: str,
    id: str,
    body: Annotated[FirmwareRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    rack_id = parse_uuid(id, INVALID_RACK_ID, "id")

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        groups = [await targets.rack_by_id(session, site_id, rack_id)]
        return _narrow_to_firmware_targets(body, groups)

    return await _run(
        services,
        request,
        org,
        body,
        summary=FIRMWARE_FAILED,
        operation_type=OperationType.FIRMWARE_CONTROL,
        code=body.code(),
        description=_firmware_description(body, "Rack"),
        info=body.info(),
        select=select,
        key=idempotency_key,
    )


@router.patch(
    "/rack/firmware",
    response_model=TaskIds,
    summary="Update firmware on racks by name, or on every rack of the site with all=true",
)
@validation_summary(BATCH_FAILED)
async def firmware_racks(
    org: str,
    body: Annotated[BatchRackFirmwareRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    names = _rack_selection(body.filter, body.all)

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        groups = await targets.racks_by_names(session, site_id, names)
        return _narrow_to_firmware_targets(body, groups)

    return await _run(
        services,
        request,
        org,
        body,
        summary=BATCH_FAILED,
        operation_type=OperationType.FIRMWARE_CONTROL,
        code=body.code(),
        description=_firmware_description(body, "Racks"),
        info=body.info(),
        select=select,
        key=idempotency_key,
    )


@router.patch(
    "/tray/{id}/firmware",
    response_model=TaskIds,
    summary="Update the firmware of one tray",
)
@validation_summary(FIRMWARE_FAILED)
async def firmware_tray(
    org: str,
    id: str,
    body: Annotated[FirmwareRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    tray_id = parse_uuid(id, INVALID_TRAY_ID, "id")

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        groups = [await targets.tray_by_id(session, site_id, tray_id)]
        return _narrow_to_firmware_targets(body, groups)

    return await _run(
        services,
        request,
        org,
        body,
        summary=FIRMWARE_FAILED,
        operation_type=OperationType.FIRMWARE_CONTROL,
        code=body.code(),
        description=_firmware_description(body, "Tray"),
        info=body.info(),
        select=select,
        key=idempotency_key,
    )


@router.patch(
    "/tray/firmware",
    response_model=TaskIds,
    summary="Update the firmware of trays picked by a filter (one task per rack)",
)
@validation_summary(BATCH_FAILED)
async def firmware_trays(
    org: str,
    body: Annotated[BatchTrayFirmwareRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    selector = _tray_selection(body.filter, body.all)

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        groups = await targets.trays_by_selector(session, site_id, selector)
        return _narrow_to_firmware_targets(body, groups)

    return await _run(
        services,
        request,
        org,
        body,
        summary=BATCH_FAILED,
        operation_type=OperationType.FIRMWARE_CONTROL,
        code=body.code(),
        description=_firmware_description(body, "Trays"),
        info=body.info(),
        select=select,
        key=idempotency_key,
    )


# --- bring-up ----------------------------------------------------------------------------


@router.post(
    "/rack/{id}/bringup",
    response_model=TaskIds,
    summary="Bring a rack up (operationCode bring_up, or ingest)",
)
@validation_summary(BRING_UP_FAILED)
async def bring_up_rack(
    org: str,
    id: str,
    body: Annotated[BringUpRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    rack_id = parse_uuid(id, INVALID_RACK_ID, "id")

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return [await targets.rack_by_id(session, site_id, rack_id)]

    verb = "ingest" if body.code() == "ingest" else "bring up"
    return await _run(
        services,
        request,
        org,
        body,
        summary=BRING_UP_FAILED,
        operation_type=OperationType.BRING_UP,
        code=body.code(),
        description=f"API {verb} Rack {rack_id}",
        info={},
        select=select,
        key=idempotency_key,
    )


@router.post(
    "/rack/bringup",
    response_model=TaskIds,
    summary="Bring up racks by name, or every rack of the site with all=true",
)
@validation_summary(BATCH_FAILED)
async def bring_up_racks(
    org: str,
    body: Annotated[BatchBringUpRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    names = _rack_selection(body.filter, body.all)

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return await targets.racks_by_names(session, site_id, names)

    verb = "ingest" if body.code() == "ingest" else "bring up"
    return await _run(
        services,
        request,
        org,
        body,
        summary=BATCH_FAILED,
        operation_type=OperationType.BRING_UP,
        code=body.code(),
        description=f"API batch {verb} Racks",
        info={},
        select=select,
        key=idempotency_key,
    )
