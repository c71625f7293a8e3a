"""Read a Redfish Task (or task monitor answer) as a `FirmwareJob`."""

from __future__ import annotations

from typing import Any

from nico.hardware.interface import FirmwareJob, FirmwareJobState

_QUEUED = frozenset({"New", "Pending"})
_RUNNING = frozenset(
    {"Starting", "Running", "Stopping", "Suspended", "Service", "Interrupted", "Cancelling"}
)
_FAILED = frozenset({"Exception", "Killed", "Cancelled"})
_MAX_MESSAGE = 1000


def task_messages(body: dict[str, Any]) -> str:
    """The Task's `Messages[].Message`, in order, without repeats."""
    found: list[str] = []
    messages = body.get("Messages")
    if isinstance(messages, list):
        for item in messages:
            if isinstance(item, dict):
                text = item.get("Message")
                if isinstance(text, str) and text.strip():
                    found.append(text.strip())
    return "; ".join(dict.fromkeys(found))[:_MAX_MESSAGE]


def firmware_job_from_task(job_id: str, status_code: int, body: Any) -> FirmwareJob:
    """Map `TaskState`/`TaskStatus`/`PercentComplete`/`Messages` to a FirmwareJob.

    A task monitor answers 202 while the task runs and the operation's final answer
    when it is done, which may carry no Task at all.
    """
    task = body if isinstance(body, dict) else {}
    task_state = task.get("TaskState")
    percent = task.get("PercentComplete")
    percent = max(0, min(100, int(percent))) if isinstance(percent, int | float) else 0
    message = task_messages(task)
    if not isinstance(task_state, str):
        if status_code == 202:
            return FirmwareJob(job_id, FirmwareJobState.RUNNING, percent, message)
        return FirmwareJob(job_id, FirmwareJobState.COMPLETED, 100, message)
    if task_state == "Completed":
        if task.get("TaskStatus") == "Critical":
            return FirmwareJob(
                job_id, FirmwareJobState.FAILED, percent, message or "task ended Critical"
            )
        return FirmwareJob(job_id, FirmwareJobState.COMPLETED, 100, message)
    if task_state in _FAILED:
        return FirmwareJob(
            job_id, FirmwareJobState.FAILED, percent, message or f"task {task_state}"
        )
    if task_state in _QUEUED:
        return FirmwareJob(job_id, FirmwareJobState.QUEUED, percent, message)
    if task_state in _RUNNING:
        return FirmwareJob(job_id, FirmwareJobState.RUNNING, percent, message)
    return FirmwareJob(job_id, FirmwareJobState.RUNNING, percent, message or task_state)
