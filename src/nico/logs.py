"""Log output of the server commands: `NICO_LOG_FORMAT=text` (default) for people,
`json` for log pipelines, one object a line.

Engine lines carry the task they belong to (`task_id`) and its rack (`rack`, the rack's
id) wherever the engine runs one: inside a Temporal activity the task is the workflow's
(a step's child workflow is `TASK/stage-N/step-M`), and the rack is what the activities
resolved for that task. Nothing here changes what a line says, only how it is framed.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from nico.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_RACKS: OrderedDict[str, str] = OrderedDict()
_MAX_REMEMBERED = 4096


def _current_task() -> str | None:
    """The task whose activity or workflow this code runs in, if any."""
    try:
        from temporalio import activity, workflow

        if activity.in_activity():
            return (activity.info().workflow_id or "").split("/", 1)[0] or None
        if workflow.in_workflow():
            return workflow.info().workflow_id.split("/", 1)[0]
    except Exception:
        return None
    return None


def remember_rack(rack_id: str, task_id: str | None = None) -> None:
    """Note the rack of the task running here, so its later lines name it."""
    task = task_id or _current_task()
    if task is None:
        return
    _RACKS[task] = rack_id
    _RACKS.move_to_end(task)
    while len(_RACKS) > _MAX_REMEMBERED:
        _RACKS.popitem(last=False)


class EngineContext(logging.Filter):
    """Adds `task_id` and `rack` to records logged while the engine runs a task."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = getattr(record, "task_id", None) or _current_task()
        record.task_id = task
        if getattr(record, "rack", None) is None:
            record.rack = _RACKS.get(task) if task else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, task_id/rack when known."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("task_id", "rack"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """The root handler in the configured format, with the engine's task context."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(EngineContext())
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    # `nico.store` logs each migration's start and end with its duration; Alembic's own
    # lines would repeat for every migration ("Context impl ...", "Will assume ...").
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
