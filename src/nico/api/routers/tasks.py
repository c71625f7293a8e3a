"""Tasks: site-wide list, one task, cancel, and the task lists of a rack and of a tray.

Single-task answers always carry the report (once one exists); lists only with
`includeReport=true`. Lists are newest first (id breaks ties) and paginate with the
total counted after filters. Task history outlives racks and trays, so listing the
tasks of a deleted rack or tray still works (an empty list when none ran).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from nico.api.access import judge_site, parse_uuid, require_site, site_id_to_check
from nico.api.body_errors import SummarizedRoute, validation_summary
from nico.api.deps import NICO_ROUTER_DEPENDENCIES, ServicesDep
from nico.api.paging import PageRequest, page_request, set_pagination_header
from nico.domain import OperationType, TaskStatus
from nico.errors import NotFound, ValidationFailed
from nico.ids import optional_uuid
from nico.schemas.common import QueryBool
from nico.schemas.tasks import CancelTaskRequest, task_list_json
from nico.schemas.tasks import Task as TaskOut
from nico.services import Services
from nico.store import tasks as task_store
from nico.store.models import Task
from nico.tasks.cancel import TASK_NOT_FOUND, cancel_task

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES, route_class=SummarizedRoute)

INVALID_TASK_ID = "Invalid Task ID specified in URL"
INVALID_RACK_ID = "Invalid Rack ID specified in URL"
INVALID_TRAY_ID = "Invalid Tray ID specified in URL"
CANCEL_FAILED = "Failed to validate cancel task request data"
LIST_FAILED = "Failed to validate request data"

SiteIdQuery = Annotated[
    str | None, Query(alias="siteId", description="ID of the Site that owns the tasks.")
]
ActiveOnlyQuery = Annotated[
    QueryBool,
    Query(
        alias="activeOnly",
        description="Only tasks that are not finished (Pending, Running, Waiting).",
    ),
]
IncludeReportQuery = Annotated[
    QueryBool, Query(alias="includeReport", description="Include each task's execution report.")
]
PageDep = Annotated[PageRequest, Depends(page_request)]
_TASK_LIST: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Tasks, newest first",
        "headers": {
            "X-Pagination": {
                "description": 'JSON {"pageNumber","pageSize","total","orderBy"}; total '
                "counts the tasks left after filters.",
                "schema": {"type": "string"},
            }
        },
    }
}
HISTORY_OUTLIVES_INVENTORY = (
    " Task history outlives inventory: the {kind} need not exist any more, so the id of a "
    "deleted (or never known) {kind} answers 200 with the tasks recorded for it, an empty "
    "list when none ran, rather than 404. Upstream's list does the same (it filters the "
    "site's tasks by the id). `siteId` must still name a site of the caller's provider."
)


def _statuses(active_only: bool, wanted: list[str] | None) -> tuple[str, ...] | None:
    chosen: set[str] | None = None
    if wanted:
        chosen = set()
        for value in wanted:
            match = next((s for s in TaskStatus if s.value.lower() == value.lower()), None)
            if match is None or match is TaskStatus.UNKNOWN:
                names = " ".join(s.value for s in TaskStatus if s is not TaskStatus.UNKNOWN)
                raise ValidationFailed(LIST_FAILED, [("status", f"must be one of [{names}]")])
            chosen.add(match.value)
    if active_only:
        active = set(task_store.NOT_FINISHED)
        chosen = active if chosen is None else chosen & active
    return None if chosen is None else tuple(sorted(chosen))


async def _list(
    services: Services,
    org: str,
    site_id: str | None,
    page: PageRequest,
    *,
    include_report: bool,
    statuses: tuple[str, ...] | None,
    rack_id: uuid.UUID | None = None,
    tray_id: uuid.UUID | None = None,
    operation_type: str | None = None,
) -> Response:
    query = task_store.TaskQuery(
        site_id=await site_id_to_check(services.db, org, site_id),
        rack_id=rack_id,
        tray_id=tray_id,
        statuses=statuses,
        operation_type=operation_type,
    )
    # The site guard's reads, the page and its total: one statement on a plain connection.
    guard, page_rows, total = await services.db.read(
        lambda conn: task_store.list_tasks_guarded(
            conn, org, query, offset=page.offset, limit=page.limit, with_report=include_report
        )
    )
    if guard is None:
        judge_site(None, None, None)
    else:
        judge_site(guard.provider_id, guard.site_provider_id, guard.flow_enabled)
    body = task_list_json(page_rows.rows, include_report=include_report, decode=page_rows.decode)
    response = Response(content=body.encode(), media_type="application/json")
    set_pagination_header(response, page, total)
    return response


@router.get(
    "/task",
    response_model=list[TaskOut],
    responses=_TASK_LIST,
    summary="Retrieve all Tasks of a Site",
)
async def list_site_tasks(
    org: str,
    services: ServicesDep,
    page: PageDep,
    site_id: SiteIdQuery = None,
    active_only: ActiveOnlyQuery = False,
    include_report: IncludeReportQuery = False,
    status: Annotated[
        list[str] | None,
        Query(description="Only these statuses (repeatable, case-insensitive)."),
    ] = None,
    rack_id: Annotated[
        str | None, Query(alias="rackId", description="Only tasks of this rack.")
    ] = None,
    tray_id: Annotated[
        str | None, Query(alias="trayId", description="Only tasks that target this tray.")
    ] = None,
    operation_type: Annotated[
        str | None,
        Query(alias="operationType", description="PowerControl, FirmwareControl or BringUp."),
    ] = None,
) -> Response:
    errors: list[tuple[str, str]] = []
    rack = optional_uuid(rack_id, "rackId", errors)
    tray = optional_uuid(tray_id, "trayId", errors)
    kind: str | None = None
    if operation_type is not None:
        try:
            kind = OperationType.parse(operation_type).value
        except ValueError as exc:
            errors.append(("operationType", str(exc)))
    if errors:
        raise ValidationFailed(LIST_FAILED, errors)
    return await _list(
        services,
        org,
        site_id,
        page,
        include_report=include_report,
        statuses=_statuses(active_only, status),
        rack_id=rack,
        tray_id=tray,
        operation_type=kind,
    )


async def _get(services: Services, org: str, id: str, site_id: str | None) -> JSONResponse:
    task_id = parse_uuid(id, INVALID_TASK_ID, "id")

    async def read(session: AsyncSession) -> Task | None:
        site = await require_site(session, org, site_id)
        return await task_store.get_task(session, task_id, site.id)

    task = await services.db.read_session(read)
    if task is None:
        raise NotFound(TASK_NOT_FOUND)
    return JSONResponse(content=TaskOut.of(task).body())


@router.get("/task/{id}", response_model=TaskOut, summary="Retrieve a Task with its report")
@router.get(
    "/rack/task/{id}",
    response_model=TaskOut,
    summary="Retrieve a Task with its report (same as GET /task/{id})",
)
async def get_task(
    org: str, id: str, services: ServicesDep, site_id: SiteIdQuery = None
) -> JSONResponse:
    return await _get(services, org, id, site_id)


@router.post(
    "/task/{id}/cancel",
    response_model=TaskOut,
    status_code=202,
    summary="Cancel a Task (202 with the Task and its report)",
)
@router.post(
    "/rack/task/{id}/cancel",
    response_model=TaskOut,
    status_code=202,
    summary="Cancel a Task (same as POST /task/{id}/cancel)",
)
@validation_summary(CANCEL_FAILED)
async def cancel(
    org: str, id: str, body: Annotated[CancelTaskRequest, Body()], services: ServicesDep
) -> JSONResponse:
    task_id = parse_uuid(id, INVALID_TASK_ID, "id")
    async with services.db.session() as session:
        site = await require_site(session, org, body.site_id, in_body=True)
    task = await cancel_task(services, task_id, site.id)
    return JSONResponse(status_code=202, content=TaskOut.of(task).body())


@router.get(
    "/rack/{id}/task",
    response_model=list[TaskOut],
    responses=_TASK_LIST,
    summary="Retrieve all Tasks of a Rack",
    description="List the Tasks of the specified Rack, newest first."
    + HISTORY_OUTLIVES_INVENTORY.format(kind="rack"),
)
async def list_rack_tasks(
    org: str,
    id: str,
    services: ServicesDep,
    page: PageDep,
    site_id: SiteIdQuery = None,
    active_only: ActiveOnlyQuery = False,
    include_report: IncludeReportQuery = False,
) -> Response:
    rack_id = parse_uuid(id, INVALID_RACK_ID, "id")
    return await _list(
        services,
        org,
        site_id,
        page,
        include_report=include_report,
        statuses=_statuses(active_only, None),
        rack_id=rack_id,
    )


@router.get(
    "/tray/{id}/task",
    response_model=list[TaskOut],
    responses=_TASK_LIST,
    summary="Retrieve all Tasks for a Tray",
    description="List Tasks targeting the specified Tray, newest first."
    + HISTORY_OUTLIVES_INVENTORY.format(kind="tray"),
)
async def list_tray_tasks(
    org: str,
    id: str,
    services: ServicesDep,
    page: PageDep,
    site_id: SiteIdQuery = None,
    active_only: ActiveOnlyQuery = False,
    include_report: IncludeReportQuery = False,
) -> Response:
    tray_id = parse_uuid(id, INVALID_TRAY_ID, "id")
    return await _list(
        services,
        org,
        site_id,
        page,
        include_report=include_report,
        statuses=_statuses(active_only, None),
        tray_id=tray_id,
    )
