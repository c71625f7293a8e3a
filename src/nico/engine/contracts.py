"""What the task manager hands the engine, and the names both sides agree on.

Payloads are plain dataclasses of JSON-safe values so Temporal's default converter
carries them unchanged and no field is lost across a workflow boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASK_WORKFLOW = "TaskWorkflow"
STEP_WORKFLOW = "StepWorkflow"


@dataclass
class TrayTarget:
    """One targeted tray: its id, display name and component type (wire name)."""

    id: str
    name: str
    type: str


@dataclass
class TaskWorkflowInput:
    """Everything a task's workflow needs; the rule is a snapshot resolved at dispatch."""

    task_id: str
    site_id: str
    rack_id: str
    operation_type: str
    operation_code: str
    # RuleDefinition in its wire (camelCase) form, as stored on the task.
    rule_definition: dict[str, Any]
    trays: list[TrayTarget]
    # Operation parameters: {"state": "on"} / {"version": "2.1", "targets": ["bmc"]} / {}.
    info: dict[str, Any] = field(default_factory=dict)
