"""NICO_LOG_FORMAT=json: one JSON object a line, and the engine's lines about a task say
which task and rack they are about."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from nico.config import Settings
from nico.logs import configure_logging
from tests.support.live import Live


@pytest.fixture
def json_logs(settings: Settings) -> Iterator[io.StringIO]:
    """The server's JSON logging, its handler writing to a buffer the test reads."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(settings.model_copy(update={"log_format": "json", "log_level": "INFO"}))
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    root.handlers[:], level = saved
    root.setLevel(level)


async def test_engine_lines_carry_task_and_rack(live: Live, json_logs: io.StringIO) -> None:
    fault = await live.http.post(
        "/v2/org/demo/nico/simulator/fault",
        json=live.site
        | {"trayIds": [live.tray_id("compute-07")], "fault": "power-fails", "count": 1},
    )
    assert fault.status_code == 201, fault.text
    [task_id] = await live.operate("PATCH", f"/rack/{live.rack.rack_id}/power", {"state": "on"})
    assert (await live.finished(task_id))["status"] == "Succeeded"

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    failed = [line for line in lines if "attempt 1 failed" in line["message"]]
    assert failed, lines
    assert failed[0]["level"] == "WARNING" and failed[0]["logger"].startswith("nico.engine")
    assert failed[0]["task_id"] == task_id
    assert failed[0]["rack"] == str(live.rack.rack_id)
