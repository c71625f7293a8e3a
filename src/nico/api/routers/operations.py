"""Power, firmware and bring-up of racks and trays: each answers `{"taskIds":[...]}`, one
task per rack, and runs as a durable workflow.

Unlike upstream these endpoints apply the Flow gate (412) like every other site-scoped
call: a site without Flow has no rules and no task engine to run them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api.access import parse_uuid, require_site
from nico.api.body_errors import SummarizedRoute, validation_summary
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep, caller_subject
from nico.domain import AC_POWER_CYCLE, ComponentType, OperationType
from nico.errors import ValidationFailed
from nico.hardware.interface import Capability
from nico.schemas.operations import (
    FIRMWARE_TARGETS,
    BatchBringUpRequest,
    BatchRackFirmwareRequest,
    BatchRackPowerRequest,
    BatchTrayFirmwareRequest,
    BatchTrayPowerRequest,
    BringUpBody,
    BringUpRequest,
    FirmwareBody,
    FirmwareFields,
    FirmwareRequest,
    OperationOptions,
    PowerBody,
    PowerRequest,
    RackFilter,
    TaskIds,
    TrayFilter,
    scope_errors,
)
from nico.services import Services
from nico.store.models import Site
from nico.tasks import idempotency, manager, targets
from nico.tasks.firmware import (
    VersionNotInCatalog,
    VersionRequired,
    describe_version,
    requested_version,
)
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
        "different body is 409). A key replays for at least 24 hours (longer when the "
        "site keeps tasks longer) and while a task it started is not finished.",
    ),
]


def _check(summary: str, errors: list[tuple[str, str]]) -> None:
    if errors:
        raise ValidationFailed(summary, errors)


Selector = Callable[[AsyncSession, uuid.UUID], Awaitable[list[RackTargets]]]


@dataclass(frozen=True)
class TaskText:
    """What a task records about its request: a default description and `info`."""

    description: str
    info: dict[str, Any]


# Builds the TaskText once the site and the targeted trays are known.
Describe = Callable[[Site, list[RackTargets]], TaskText]


def fixed(description: str, info: dict[str, Any]) -> Describe:
    return lambda _site, _groups: TaskText(description, info)


@dataclass(frozen=True)
class Call:
    """What every operation endpoint passes on: who asked, how, and with which key."""

    services: Services
    request: Request
    org: str
    key: str | None


def one_rack(id: str) -> Selector:
    rack_id = parse_uuid(id, INVALID_RACK_ID, "id")

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return [await targets.rack_by_id(session, site_id, rack_id)]

    return select


def named_racks(flt: RackFilter | None, all_flag: bool | None) -> Selector:
    names = list(flt.names or []) if flt is not None else []
    _check(BATCH_FAILED, scope_errors(not names, all_flag))

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return await targets.racks_by_names(session, site_id, names or None)

    return select


def one_tray(id: str) -> Selector:
    tray_id = parse_uuid(id, INVALID_TRAY_ID, "id")

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return [await targets.tray_by_id(session, site_id, tray_id)]

    return select


def filtered_trays(flt: TrayFilter | None, all_flag: bool | None) -> Selector:
    empty = flt is None or flt.is_empty()
    _check(BATCH_FAILED, scope_errors(empty, all_flag))
    selector = None if flt is None or empty else flt.selector(BATCH_FAILED)

    async def select(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        return await targets.trays_by_selector(session, site_id, selector)

    return select


def with_firmware_targets(fields: FirmwareFields, select: Selector) -> Selector:
    """Keep only trays that have a named firmware component; 400 if none is left."""
    kinds = fields.target_types()
    if kinds is None:
        return select

    async def narrowed(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        groups = await select(session, site_id)
        kept = [RackTargets(g.rack, tuple(t for t in g.trays if t.type in kinds)) for g in groups]
        kept = [g for g in kept if g.trays]
        if groups and not kept:
            present = sorted({t.type for g in groups for t in g.trays})
            have = sorted(
                {
                    n
                    for kind, names in FIRMWARE_TARGETS.items()
                    if kind.value in present
                    for n in names
                }
            )
            detail = (
                f"none of the targeted trays ({', '.join(present)}) has these components; "
                f"they have: {', '.join(have)}"
            )
            raise ValidationFailed(FIRMWARE_FAILED, [("targets", detail)])
        return kept

    return narrowed


async def _run(
    call: Call,
    body: OperationOptions,
    select: Selector,
    *,
    summary: str,
    operation_type: OperationType,
    code: str,
    describe: Describe,
) -> TaskIds:
    """Guard the site, replay a known Idempotency-Key, pick the targets, submit."""
    _check(summary, body.option_errors())
    claim = idempotency.claim_for(
        call.org, call.key, call.request.method, call.request.url.path, body.model_dump(mode="json")
    )
    async with call.services.db.session() as session:
        site = await require_site(session, call.org, body.site_id, in_body=True)
        replayed = await idempotency.replay(session, claim) if claim is not None else None
        if replayed is not None:
            return TaskIds(task_ids=replayed)
        groups = await select(session, site.id)
        if not groups:
            # A slot filter that matches nothing: nothing to run (upstream answers []).
            if claim is not None:
                await idempotency.remember(session, claim, [])
            return TaskIds(task_ids=[])
        text = describe(site, groups)
    operation = manager.OperationRequest(
        site_id=site.id,
        operation_type=operation_type,
        operation_code=code,
        description=body.description or text.description,
        info=text.info,
        pinned_rule_id=body.rule_id,
        strategy=body.strategy(),
        queue_timeout=body.queue_timeout_seconds(),
        created_by=caller_subject(call.request),
    )
    return TaskIds(task_ids=await manager.submit(call.services, operation, groups, claim))


def ac_power_cycle_check(services: Services, select: Selector, summary: str) -> Selector:
    """ACPowerCycle: every rack needs a selected PowerShelf whose backend can cut AC, and
    its task covers the trays behind the shelves (400 naming the trays otherwise)."""

    def can_cycle(backend: str, kind: ComponentType) -> bool:
        return Capability.AC_POWER_CYCLE in services.backends.backend(backend).capabilities(kind)

    async def checked(session: AsyncSession, site_id: uuid.UUID) -> list[RackTargets]:
        groups = await select(session, site_id)
        return await targets.ac_power_cycle_targets(
            session,
            groups,
            backend_of=services.backends.backend_name,
            can_cycle=can_cycle,
            summary=summary,
        )

    return checked


async def power(call: Call, body: PowerBody, select: Selector, what: str, summary: str) -> TaskIds:
    code = body.operation_code()
    if code == AC_POWER_CYCLE:
        select = ac_power_cycle_check(call.services, select, summary)
    return await _run(
        call,
        body,
        select,
        summary=summary,
        operation_type=OperationType.POWER_CONTROL,
        code=code,
        describe=fixed(f"API {body.words()} {what}", {"state": body.state}),
    )


def firmware_text(body: FirmwareFields, what: str, summary: str) -> Describe:
    """The task's concrete version: as given when the site's catalog lists it for every
    targeted type, else the catalog's highest per targeted type; 400 naming `version`
    (and the types) otherwise, before anything is started."""

    def describe(site: Site, groups: list[RackTargets]) -> TaskText:
        kinds = {tray.type for group in groups for tray in group.trays}
        try:
            version = requested_version(body.version, site.firmware_catalog, kinds)
        except (VersionRequired, VersionNotInCatalog) as exc:
            raise ValidationFailed(summary, [("version", str(exc))]) from None
        return TaskText(
            f"API firmware {body.code()} {what} to {describe_version(version)}",
            body.info() | {"version": version},
        )

    return describe


async def firmware(
    call: Call, body: FirmwareBody, select: Selector, what: str, summary: str
) -> TaskIds:
    return await _run(
        call,
        body,
        with_firmware_targets(body, select),
        summary=summary,
        operation_type=OperationType.FIRMWARE_CONTROL,
        code=body.code(),
        describe=firmware_text(body, what, summary),
    )


async def bring_up(
    call: Call, body: BringUpBody, select: Selector, description: str, summary: str
) -> TaskIds:
    verb = "ingest" if body.code() == "ingest" else "bring up"
    return await _run(
        call,
        body,
        select,
        summary=summary,
        operation_type=OperationType.BRING_UP,
        code=body.code(),
        describe=fixed(description.format(verb=verb), {}),
    )


def _call(services: Services, request: Request, org: str, key: str | None) -> Call:
    return Call(services, request, org, key)


# --- endpoints -----------------------------------------------------------------------------


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
    call = _call(services, request, org, idempotency_key)
    return await power(call, body, one_rack(id), "Rack", POWER_FAILED)


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
    call = _call(services, request, org, idempotency_key)
    return await power(call, body, named_racks(body.filter, body.all), "Racks", BATCH_FAILED)


@router.patch("/tray/{id}/power", response_model=TaskIds, summary="Power-control one tray")
@validation_summary(POWER_FAILED)
async def power_tray(
    org: str,
    id: str,
    body: Annotated[PowerRequest, Body()],
    request: Request,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TaskIds:
    call = _call(services, request, org, idempotency_key)
    return await power(call, body, one_tray(id), "Tray", POWER_FAILED)


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
    call = _call(services, request, org, idempotency_key)
    return await power(call, body, filtered_trays(body.filter, body.all), "Trays", BATCH_FAILED)


@router.patch(
    "/rack/{id}/firmware", response_model=TaskIds, summary="Update the firmware of one rack's trays"
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
    call = _call(services, request, org, idempotency_key)
    return await firmware(call, body, one_rack(id), "Rack", FIRMWARE_FAILED)


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
    call = _call(services, request, org, idempotency_key)
    return await firmware(call, body, named_racks(body.filter, body.all), "Racks", BATCH_FAILED)


@router.patch(
    "/tray/{id}/firmware", response_model=TaskIds, summary="Update the firmware of one tray"
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
    call = _call(services, request, org, idempotency_key)
    return await firmware(call, body, one_tray(id), "Tray", FIRMWARE_FAILED)


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
    call = _call(services, request, org, idempotency_key)
    select = filtered_trays(body.filter, body.all)
    return await firmware(call, body, select, "Trays", BATCH_FAILED)


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
    call = _call(services, request, org, idempotency_key)
    select = one_rack(id)
    return await bring_up(call, body, select, f"API {{verb}} Rack {id}", BRING_UP_FAILED)


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
    call = _call(services, request, org, idempotency_key)
    select = named_racks(body.filter, body.all)
    return await bring_up(call, body, select, "API batch {verb} Racks", BATCH_FAILED)
