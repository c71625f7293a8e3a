"""TaskReportV1 (seed 000): the live, stage-by-stage report of a task, and its transitions.

Pure and deterministic (timestamps are passed in), so the workflow can own the report
and the cancel API can finalize a stored one. The wire form is exactly seed 000's:
camelCase keys, lowercase statuses, RFC 3339 UTC seconds, `version` the integer 1,
errors cut to 512 bytes on a UTF-8 boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nico.domain import ReportStatus
from nico.text import truncate_utf8 as truncate_error

REPORT_VERSION = 1
CANCELLED_BY_USER = "cancelled by user"


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC at second precision (`2024-04-10T14:00:00Z`)."""
    if moment.tzinfo is None:
        raise ValueError("report timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StepReport:
    """One rule step of a stage; pairs 1:1 with the rule's step at the same position."""

    component_type: str
    status: ReportStatus
    total_components: int
    completed_components: int | None = None
    failed_components: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    # Firmware steps (our addition): trays left alone because they already ran the
    # requested version, and per tray its outcome with the version before and after.
    skipped_components: int | None = None
    components: list[dict[str, Any]] | None = None

    @property
    def finished(self) -> bool:
        return self.status in (ReportStatus.COMPLETED, ReportStatus.FAILED, ReportStatus.SKIPPED)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "componentType": self.component_type,
            "status": self.status.value,
            "totalComponents": self.total_components,
        }
        if self.completed_components is not None:
            out["completedComponents"] = self.completed_components
        if self.failed_components is not None:
            out["failedComponents"] = self.failed_components
        if self.skipped_components is not None:
            out["skippedComponents"] = self.skipped_components
        if self.started_at is not None:
            out["startedAt"] = self.started_at
        if self.finished_at is not None:
            out["finishedAt"] = self.finished_at
        if self.error:
            out["error"] = self.error
        if self.components is not None:
            out["components"] = [dict(c) for c in self.components]
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> StepReport:
        components = data.get("components")
        return cls(
            component_type=str(data["componentType"]),
            status=ReportStatus(data["status"]),
            total_components=int(data.get("totalComponents") or 0),
            completed_components=data.get("completedComponents"),
            failed_components=data.get("failedComponents"),
            started_at=data.get("startedAt"),
            finished_at=data.get("finishedAt"),
            error=data.get("error"),
            skipped_components=data.get("skippedComponents"),
            components=[dict(c) for c in components] if components is not None else None,
        )


@dataclass
class StageReport:
    """One rule stage (all steps sharing a stage number)."""

    number: int
    status: ReportStatus
    steps: list[StepReport]
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "number": self.number,
            "status": self.status.value,
            "steps": [s.to_wire() for s in self.steps],
        }
        if self.started_at is not None:
            out["startedAt"] = self.started_at
        if self.finished_at is not None:
            out["finishedAt"] = self.finished_at
        if self.error:
            out["error"] = self.error
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> StageReport:
        return cls(
            number=int(data["number"]),
            status=ReportStatus(data["status"]),
            steps=[StepReport.from_wire(s) for s in data.get("steps") or ()],
            started_at=data.get("startedAt"),
            finished_at=data.get("finishedAt"),
            error=data.get("error"),
        )


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """What the initial report needs of a rule step: its type and how many trays it targets."""

    component_type: str
    total: int


@dataclass
class TaskReport:
    """TaskReportV1. Transitions never move a stage or step backwards."""

    stages: list[StageReport]
    error: str | None = None
    version: int = REPORT_VERSION
    _by_number: dict[int, StageReport] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_number = {s.number: s for s in self.stages}

    # --- construction -------------------------------------------------------------------

    @classmethod
    def initial(cls, plan: Sequence[tuple[int, Sequence[PlannedStep]]]) -> TaskReport:
        """All stages pending; a step with no targeted trays is `skipped` from the start."""
        stages = [
            StageReport(
                number=number,
                status=ReportStatus.PENDING,
                steps=[
                    StepReport(
                        component_type=p.component_type,
                        status=ReportStatus.PENDING if p.total > 0 else ReportStatus.SKIPPED,
                        total_components=p.total,
                    )
                    for p in steps
                ],
            )
            for number, steps in sorted(plan, key=lambda item: item[0])
        ]
        return cls(stages=stages)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "stages": [s.to_wire() for s in self.stages],
        }
        if self.error:
            out["error"] = self.error
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TaskReport:
        return cls(
            stages=[StageReport.from_wire(s) for s in data.get("stages") or ()],
            error=data.get("error") or None,
            version=int(data.get("version") or REPORT_VERSION),
        )

    # --- queries ------------------------------------------------------------------------

    def stage(self, number: int) -> StageReport:
        try:
            return self._by_number[number]
        except KeyError:
            raise KeyError(f"report has no stage {number}") from None

    def step(self, number: int, position: int) -> StepReport:
        return self.stage(number).steps[position]

    # --- transitions --------------------------------------------------------------------

    def begin_stage(self, number: int, now: datetime) -> None:
        """Stage and its pending steps become running (idempotent)."""
        stage = self.stage(number)
        if stage.status is not ReportStatus.PENDING:
            return
        ts = format_timestamp(now)
        stage.status = ReportStatus.RUNNING
        stage.started_at = ts
        for step in stage.steps:
            if step.status is ReportStatus.PENDING:
                step.status = ReportStatus.RUNNING
                step.started_at = ts
                step.completed_components = 0
                step.failed_components = 0

    def update_counts(self, number: int, position: int, completed: int, failed: int) -> bool:
        """Live per-tray counts of a running step; counts only grow. Returns whether changed."""
        step = self.step(number, position)
        if step.status is not ReportStatus.RUNNING:
            return False
        new_completed = max(step.completed_components or 0, completed)
        new_failed = max(step.failed_components or 0, failed)
        if (new_completed, new_failed) == (step.completed_components, step.failed_components):
            return False
        step.completed_components = new_completed
        step.failed_components = new_failed
        return True

    def record_outcomes(
        self, number: int, position: int, skipped: int, components: Sequence[Mapping[str, Any]]
    ) -> None:
        """A firmware step's per-tray outcomes (from -> to) and how many were skipped."""
        step = self.step(number, position)
        step.skipped_components = skipped
        step.components = [dict(c) for c in components]

    def complete_step(
        self, number: int, position: int, completed: int, failed: int, now: datetime
    ) -> None:
        step = self.step(number, position)
        if step.finished:
            return
        self.update_counts(number, position, completed, failed)
        step.status = ReportStatus.COMPLETED
        step.finished_at = format_timestamp(now)

    def fail_step(
        self,
        number: int,
        position: int,
        error: str,
        completed: int,
        failed: int,
        now: datetime,
    ) -> None:
        step = self.step(number, position)
        if step.finished:
            return
        self.update_counts(number, position, completed, failed)
        step.status = ReportStatus.FAILED
        step.finished_at = format_timestamp(now)
        step.error = truncate_error(error)

    def complete_stage(self, number: int, now: datetime) -> None:
        """Stage completed; any step still running completes with it."""
        stage = self.stage(number)
        if stage.status in (ReportStatus.COMPLETED, ReportStatus.FAILED):
            return
        ts = format_timestamp(now)
        if stage.started_at is None:
            stage.started_at = ts
        for step in stage.steps:
            if step.status is ReportStatus.RUNNING:
                step.status = ReportStatus.COMPLETED
                step.finished_at = ts
        stage.status = ReportStatus.COMPLETED
        stage.finished_at = ts

    def fail_stage(self, number: int, error: str, now: datetime) -> None:
        """Stage failed; steps still running fail with the same error; the first failing
        stage's error becomes the report's top-level error and is never overwritten."""
        stage = self.stage(number)
        if stage.status in (ReportStatus.COMPLETED, ReportStatus.FAILED):
            return
        ts = format_timestamp(now)
        text = truncate_error(error)
        if stage.started_at is None:
            stage.started_at = ts
        for step in stage.steps:
            if step.status in (ReportStatus.RUNNING, ReportStatus.PENDING):
                step.status = ReportStatus.FAILED
                step.finished_at = ts
                step.started_at = step.started_at or ts
                step.error = text
        stage.status = ReportStatus.FAILED
        stage.finished_at = ts
        stage.error = text
        if not self.error:
            self.error = text

    def finalize_cancelled(self, now: datetime, reason: str = CANCELLED_BY_USER) -> None:
        """Cancel: running stages and steps fail with `reason`; later stages stay pending."""
        for stage in self.stages:
            if stage.status is ReportStatus.RUNNING:
                self.fail_stage(stage.number, reason, now)
        if not self.error:
            self.error = truncate_error(reason)


def finalize_cancelled(
    report: Mapping[str, Any] | None,
    now: datetime | None = None,
    reason: str = CANCELLED_BY_USER,
) -> dict[str, Any] | None:
    """A stored report of a task its workflow will not finish (cancel had to terminate
    it, the reconciler found it gone) with the running stage failed for `reason`, so it
    stops showing progress. None when there is nothing to finalize: no report yet, or
    one that does not parse (the caller then leaves the stored report as it is)."""
    if report is None:
        return None
    try:
        model = TaskReport.from_wire(report)
    except (KeyError, TypeError, ValueError):
        return None
    model.finalize_cancelled(now or datetime.now(UTC), reason)
    return model.to_wire()
