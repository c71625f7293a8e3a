"""Task and TaskReportV1 wire models (seed 000), and the cancel request.

Where seed 000's example and its schema disagree the example wins: `started`/`finished`
are null until set and `report.version` is the integer 1. `report` is left out of a task
that has none yet and of list items unless `includeReport=true`.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import IntEnum
from functools import lru_cache
from operator import attrgetter, itemgetter
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from nico.domain import ReportStatus, TaskStatus
from nico.schemas.common import (
    DateTimeText,
    Omittable,
    RequestModel,
    ResponseModel,
    UtcTimestamp,
    named_enum_copy,
    no_default,
    no_required,
    rfc3339,
)

if TYPE_CHECKING:
    TaskReportV1Status = ReportStatus
else:
    TaskReportV1Status = named_enum_copy(
        "TaskReportV1Status", ReportStatus, "Per-stage and per-step execution status."
    )


class TaskReportV1Version(IntEnum):
    """Schema version of a report: the integer 1, as seed 000's example, upstream's code
    and SPEC send it (the seed's schema says the string "1"; docs/openapi.md)."""

    V1 = 1


class TaskReportV1Component(ResponseModel):
    """One tray of a firmware step (our addition): what happened to it, from -> to."""

    tray_id: uuid.UUID = Field(description="The tray's id.")
    name: str = Field(description="The tray's name.")
    outcome: TaskReportV1Status = Field(
        description="`completed` (updated), `skipped` (already at the requested version), "
        "`failed`, or `pending` (not started: the step stopped first)."
    )
    from_version: Omittable[str] = Field(
        None, description="Version the tray's BMC reported before the step touched it."
    )
    to_version: Omittable[str] = Field(
        None, description="Last version the tray's BMC reported during the step."
    )


class TaskReportV1Step(ResponseModel):
    """Execution state of one rule step; pairs 1:1 with the rule's step at its index."""

    component_type: str = Field(description="Component class this step targets.")
    status: TaskReportV1Status
    total_components: Omittable[int] = Field(
        None, description="Count of components of `componentType` this step targets."
    )
    completed_components: Omittable[int] = Field(
        None, description="Components that finished the step successfully so far (live)."
    )
    failed_components: Omittable[int] = Field(
        None, description="Components that failed the step so far (live)."
    )
    started_at: Omittable[DateTimeText] = Field(
        None, description="Set when the step leaves `pending`."
    )
    finished_at: Omittable[DateTimeText] = Field(
        None, description="Set when the step reaches a final state."
    )
    error: Omittable[str] = Field(
        None, description="Failure summary naming the trays that failed; at most 512 bytes."
    )
    skipped_components: Omittable[int] = Field(
        None,
        description="Firmware steps (our addition): trays left alone because they already "
        "ran the requested version (the request did not set overrideVersionCheck). They are "
        "neither completed nor failed.",
    )
    components: Omittable[list[TaskReportV1Component]] = Field(
        None,
        description="Firmware steps (our addition): per targeted tray, its outcome and the "
        "version read before and after the step.",
    )


class TaskReportV1Stage(ResponseModel):
    """Execution state of one rule stage; `number` joins it back to the rule."""

    number: int
    status: TaskReportV1Status
    steps: list[TaskReportV1Step]
    started_at: Omittable[DateTimeText] = None
    finished_at: Omittable[DateTimeText] = None
    error: Omittable[str] = None


def _version_required(schema: dict[str, Any]) -> None:
    """`version` is always sent (seed 000 lists it as required); its default only lets the
    code build a report without naming it."""
    schema["required"] = ["version", *schema.get("required", [])]


class TaskReportV1(ResponseModel):
    """Structured execution report (version 1) mirroring the rule's stages and steps."""

    model_config = ConfigDict(json_schema_extra=_version_required)

    version: TaskReportV1Version = Field(
        TaskReportV1Version.V1,
        description="Schema version of this report: always 1.",
        json_schema_extra=no_default,
    )
    stages: list[TaskReportV1Stage]
    error: Omittable[str] = Field(
        None, description="The first failing stage's message; never overwritten."
    )


class Task(ResponseModel):
    """A task: one operation on one rack, executed as a durable workflow."""

    # Seed 000 lists no required field; every one is sent all the same.
    model_config = ConfigDict(json_schema_extra=no_required)

    id: uuid.UUID
    status: TaskStatus
    description: str
    message: str
    rule_id: uuid.UUID | None = Field(
        description="Operation rule resolved for this task; null for a built-in rule or "
        "while the task is still queued."
    )
    started: UtcTimestamp | None = Field(description="When execution started; null until then.")
    finished: UtcTimestamp | None = Field(
        description="When the task finished (succeeded, failed or terminated); null until then."
    )
    created: UtcTimestamp
    updated: UtcTimestamp
    created_by: Omittable[str] = Field(
        None,
        description="Subject of the token that asked for the task (tray history rows "
        "name it too); omitted for tasks from before it was recorded.",
    )
    report: Omittable[TaskReportV1] = Field(
        None,
        description="Execution report. Always on single-task responses once produced; on "
        "lists only with includeReport=true; omitted while the task has none.",
    )

    def body(self) -> dict[str, Any]:
        """The wire form: `report` omitted when absent, its unset fields left out.

        Routes return this directly (the declared `response_model` keeps OpenAPI true)
        because a serializer hook would hide the schema from OpenAPI.
        """
        data = self.wire(exclude={"report"} if self.created_by else {"report", "created_by"})
        if self.report is not None:
            data["report"] = self.report.wire(exclude_none=True)
        return data

    @classmethod
    def of(cls, task: Any, *, include_report: bool = True) -> Task:
        """From a stored task row; a report that is not valid v1 is left out."""
        report = None
        if include_report and isinstance(task.report, dict):
            try:
                report = TaskReportV1.model_validate(task.report)
            except ValueError:
                report = None
        return cls(
            id=task.id,
            status=TaskStatus(task.status),
            description=task.description,
            message=task.message,
            rule_id=task.rule_id,
            started=task.started,
            finished=task.finished,
            created=task.created,
            updated=task.updated,
            created_by=task.created_by,
            report=report,
        )


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def task_list_item(row: Any) -> dict[str, Any]:
    """`Task.of(row, include_report=False).body()` without building the model: a list
    serializes up to 100 of these per request, and validating each row's fields again
    (they come from our own columns) was a large part of a list's CPU.
    tests/api/test_task_list_items.py keeps the two equal."""
    item = {
        "id": str(row.id),
        "status": TaskStatus(row.status).value,
        "description": row.description,
        "message": row.message,
        "ruleId": None if row.rule_id is None else str(row.rule_id),
        "started": _timestamp(row.started),
        "finished": _timestamp(row.finished),
        "created": rfc3339(row.created),
        "updated": rfc3339(row.updated),
    }
    if row.created_by:
        item["createdBy"] = row.created_by
    return item


# JSON text as the API's JSONResponse writes it; one encoder for the process, since
# json.dumps with these options builds a new one at every call.
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


# Wire JSON of reports already validated, by (task id, updated): a report only changes
# with its task's `updated`, and a finished task's never changes, so a list read again
# (a dashboard polling a page) skips parsing, validating and writing each report, which
# cost ~0.25 ms a task. Bounded; least recently used go first.
REPORT_CACHE_SIZE = 4096
_reports: OrderedDict[tuple[Any, datetime], str | None] = OrderedDict()


def report_json(task_id: Any, updated: datetime, stored: str | None) -> str | None:
    """The wire JSON of a task's stored report text (None when it has none or it is not
    valid v1, as `Task.of` leaves it out)."""
    key = (task_id, updated)
    if key in _reports:
        _reports.move_to_end(key)
        return _reports[key]
    text: str | None = None
    parsed = None if stored is None else json.loads(stored)
    if isinstance(parsed, dict):
        try:
            text = _dumps(TaskReportV1.model_validate(parsed).wire(exclude_none=True))
        except ValueError:
            text = None
    _reports[key] = text
    while len(_reports) > REPORT_CACHE_SIZE:
        _reports.popitem(last=False)
    return text


# Wire JSON of list items already written, keyed by every column an item is built from
# (`task_list_item` reads nothing else), so a changed task, whatever wrote it, is a new
# key and never served stale. A full page of tasks seen before then costs about what a
# page of two costs: writing an item (UUIDs, four timestamps, JSON) was ~0.03 ms each.
# Bounded; least recently used go first.
ITEM_CACHE_SIZE = 4096
ITEM_FIELDS = (
    "id",
    "status",
    "description",
    "message",
    "rule_id",
    "started",
    "finished",
    "created",
    "updated",
    "created_by",
)
_items: OrderedDict[tuple[Any, ...], str] = OrderedDict()
# A raw row's typed values by column name (`nico.store.tasks.RawPage.decode`).
RowDecoder = Callable[[Sequence[Any]], dict[str, Any]]


@lru_cache(maxsize=64)
def _key_getter(fields: tuple[str, ...] | None) -> Callable[[Any], tuple[Any, ...]]:
    """The item key of a row: by position when the rows name their fields (a row's
    attribute access cost ~0.7 us a field, ten of them more than the cache saved)."""
    if fields is None:
        return attrgetter(*ITEM_FIELDS)
    return itemgetter(*(fields.index(name) for name in ITEM_FIELDS))


def task_list_item_json(
    row: Any, key_of: Callable[[Any], tuple[Any, ...]], decode: RowDecoder | None = None
) -> str:
    """`task_list_item(row)` as JSON text, from the per-process cache when this exact
    version of the row was written before. With `decode`, `row` holds raw driver values
    (the key) and is decoded only on a miss."""
    key = key_of(row)
    text = _items.get(key)
    if text is not None:
        _items.move_to_end(key)
        return text
    text = _dumps(task_list_item(row if decode is None else SimpleNamespace(**decode(row))))
    _items[key] = text
    if len(_items) > ITEM_CACHE_SIZE:
        _items.popitem(last=False)
    return text


def task_list_json(
    rows: Sequence[Any], *, include_report: bool, decode: RowDecoder | None = None
) -> str:
    """A task list's JSON body: each item as the cached `task_list_item_json`, with its
    report (when asked for and valid) as the cached wire JSON. `decode`: the rows are
    raw driver values (`nico.store.tasks.RawPage`), keys of both caches as they are."""
    if not rows:
        return "[]"
    fields = getattr(rows[0], "_fields", None)
    key_of = _key_getter(None if fields is None else tuple(fields))
    if not include_report:
        return "[" + ",".join([task_list_item_json(row, key_of, decode) for row in rows]) + "]"
    items = []
    for row in rows:
        text = task_list_item_json(row, key_of, decode)
        report = report_json(row.id, row.updated, row.report)
        if report is not None:
            text = f'{text[:-1]},"report":{report}}}'
        items.append(text)
    return "[" + ",".join(items) + "]"


class CancelTaskRequest(RequestModel):
    """Body of `POST /task/{id}/cancel`."""

    site_id: uuid.UUID = Field(description="ID of the Site that owns the task.")
