"""Payloads between the task workflow, its step children and the activities.

Plain dataclasses of JSON-safe values (Temporal's default converter carries them as is);
the rule travels in wire form so nothing typed `Any` loses fields across a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nico.engine.contracts import TrayTarget

# Activity names (workflows call activities by name so the sandbox never imports I/O code).
BEGIN_TASK = "begin_task"
SAVE_REPORT = "save_report"
FINISH_TASK = "finish_task"
POWER_CONTROL = "power_control"
POWER_STATUS = "power_status"
OBSERVE_POWER = "observe_power"
OBSERVE_REACHABILITY = "observe_reachability"
FIRMWARE_START = "firmware_start"
OBSERVE_FIRMWARE = "observe_firmware"
FIRMWARE_VERSIONS = "firmware_versions"
BRING_UP_CONTROL = "bring_up_control"
OBSERVE_BRING_UP = "observe_bring_up"
INJECT_EXPECTATION = "inject_expectation"
# One whole step in one heartbeating activity (nico.engine.step_activity).
RUN_STEP = "run_step"

# Signal a step child sends its parent with cumulative per-tray outcome counts.
STEP_PROGRESS_SIGNAL = "step_progress"


@dataclass
class BeginTaskInput:
    task_id: str
    rule_definition: dict[str, Any]
    trays: list[TrayTarget]
    report: dict[str, Any]
    message: str


@dataclass
class BeginTaskResult:
    """`started`: the task is Running with the initial report. Otherwise `error` says why
    it was failed before anything was touched, or `status` is where another writer left it."""

    started: bool
    status: str
    error: str | None = None


@dataclass
class SaveReportInput:
    task_id: str
    report: dict[str, Any]
    message: str


@dataclass
class FinishTaskInput:
    task_id: str
    rack_id: str
    status: str
    message: str
    report: dict[str, Any] | None
    # The status the task must still be in: Running, or Pending when it failed before
    # it began.
    expected: str = "Running"


@dataclass
class PowerCommand:
    ledger_key: str
    tray_id: str
    code: str


@dataclass
class PowerResult:
    """`outcome_unknown`: an earlier attempt of this cycle may have reached the BMC but
    never learned its answer, so the command was not sent again."""

    outcome_unknown: bool = False


@dataclass
class FirmwareCommand:
    ledger_key: str
    tray_id: str
    operation: str
    version: str | None
    targets: list[str] = field(default_factory=list)


@dataclass
class TrayQuery:
    tray_id: str


@dataclass
class TraysQuery:
    tray_ids: list[str]


@dataclass
class ReachGroup:
    """Trays of one component type; `need_all` False: one answering tray is enough."""

    tray_ids: list[str]
    need_all: bool = True


@dataclass
class ReachabilityQuery:
    groups: list[ReachGroup]


@dataclass
class FirmwareQuery:
    tray_id: str
    job_id: str


REACHABLE = "reachable"  # Observation.state of a BMC that answered


@dataclass
class Observation:
    """One poll's answer: a state, or why it could not be read. A failed poll means "not
    yet" unless `retryable` is False: then waiting cannot help and the poll ends. `infra`:
    nico's own database or Temporal did not answer (no BMC was asked), so the wait does
    not count against the poll's timeout."""

    state: str | None = None
    error: str | None = None
    percent: int | None = None
    detail: str | None = None
    retryable: bool = True
    infra: bool = False
    # A completed firmware job: the version the tray reported right after it.
    version: str | None = None


@dataclass
class StepInput:
    task_id: str
    stage: int
    position: int  # the step's index within its stage (the report's step index)
    step: dict[str, Any]  # SequenceStep wire form
    trays: list[TrayTarget]  # targeted trays of this step's component type
    task_trays: list[TrayTarget]  # every tray the task targets (cross-type actions)
    operation_type: str
    operation_code: str
    info: dict[str, Any]


@dataclass
class StepRunInput:
    """A step for the `run_step` activity: its trays and checks get `limit` seconds from
    when it was first scheduled (the step's `budget`, less the `delayAfter` the workflow
    sleeps after it). Relative, so no clock but the server's decides how much is left."""

    step: StepInput
    limit: float
    budget: float


@dataclass
class StepProgress:
    stage: int
    position: int
    completed: int
    failed: int


@dataclass
class StepResult:
    """`status`: completed | failed | cancelled. Counts are per tray; `skipped` trays (a
    firmware step's trays already at the requested version) are neither completed nor
    failed. `components`: per tray of a firmware step, its outcome and versions
    (`TrayOutcome` wire form)."""

    status: str
    total: int
    completed: int
    failed: int
    peak_in_flight: int
    error: str | None = None
    skipped: int = 0
    components: list[dict[str, Any]] | None = None


@dataclass
class StepSummary:
    stage: int
    component_type: str
    max_parallel: int
    total: int
    peak_in_flight: int
    status: str


@dataclass
class TaskWorkflowResult:
    status: str
    message: str
    steps: list[StepSummary] = field(default_factory=list)
