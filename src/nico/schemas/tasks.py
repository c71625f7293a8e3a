"""Task and TaskReportV1 wire models (seed 000), and the cancel request.

Where seed 000's example and its schema disagree the example wins: `started`/`finished`
are null until set and `report.version` is the integer 1. `report` is left out of a task
that has none yet and of list items unless `includeReport=true`.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field

from nico.domain import ReportStatus, TaskStatus
from nico.schemas.common import RequestModel, ResponseModel, UtcTimestamp


class TaskReportV1Step(ResponseModel):
    """Execution state of one rule step; pairs 1:1 with the rule's step at its index."""

    component_type: str = Field(description="Component class this step targets.")
    status: ReportStatus
    total_components: int | None = Field(
        None, description="Count of components of `componentType` this step targets."
    )
    completed_components: int | None = Field(
        None, description="Components that finished the step successfully so far (live)."
    )
    failed_components: int | None = Field(
        None, description="Components that failed the step so far (live)."
    )
    started_at: str | None = Field(None, description="Set when the step leaves `pending`.")
    finished_at: str | None = Field(None, description="Set when the step reaches a final state.")
    error: str | None = Field(
        None, description="Failure summary naming the trays that failed; at most 512 bytes."
    )


class TaskReportV1Stage(ResponseModel):
    """Execution state of one rule stage; `number` joins it back to the rule."""

    number: int
    status: ReportStatus
    steps: list[TaskReportV1Step]
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None


class TaskReportV1(ResponseModel):
    """Structured execution report (version 1) mirroring the rule's stages and steps."""

    version: Literal[1] = Field(1, description="Schema version of this report: always 1.")
    stages: list[TaskReportV1Stage]
    error: str | None = Field(
        None, description="The first failing stage's message; never overwritten."
    )


class Task(ResponseModel):
    """A task: one operation on one rack, executed as a durable workflow."""

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
    report: TaskReportV1 | None = Field(
        None,
        description="Execution report. Always on single-task responses once produced; on "
        "lists only with includeReport=true; omitted while the task has none.",
    )

    def body(self) -> dict[str, Any]:
        """The wire form: `report` omitted when absent, its unset fields left out.

        Routes return this directly (the declared `response_model` keeps OpenAPI true)
        because a serializer hook would hide the schema from OpenAPI.
        """
        data = self.wire(exclude={"report"})
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
            report=report,
        )


class CancelTaskRequest(RequestModel):
    """Body of `POST /task/{id}/cancel`."""

    site_id: uuid.UUID = Field(description="ID of the Site that owns the task.")
