"""An outage of nico's database reads in the worker log as one WARNING line per part of
nico that meets it (the queue sweep, the reconciler, the worker's activities) when it begins and
one when it ends: no traceback, however many passes or calls meet it (issue 9, honesty)."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from nico.engine.infra import OutageLog, retrying
from nico.services import Services
from nico.store.db import Database
from nico.tasks.background import run_pass
from tests.engine.test_infra_outage import _refused


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fresh_outage_log(monkeypatch: pytest.MonkeyPatch) -> OutageLog:
    log = OutageLog()
    monkeypatch.setattr("nico.engine.infra.OUTAGES", log)
    monkeypatch.setattr("nico.tasks.background.OUTAGES", log)
    return log


async def _passes_through_an_outage(
    services: Services, caplog: pytest.LogCaptureFixture
) -> tuple[list[str], list[str]]:
    """Three passes against a database that refuses connections, then one that answers:
    the outage lines (begun, ended) of the passes, checked for what every pass shares."""
    working = services.db
    down = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nico")
    caplog.set_level(logging.INFO)
    try:
        services.db = down
        for _ in range(3):
            await run_pass(services)
    finally:
        services.db = working
        await down.dispose()
    await run_pass(services)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("nico")]
    assert not [r for r in caplog.records if r.exc_info], "an outage logged a traceback"
    began = [m for level, m in lines if "unavailable" in m]
    ended = [m for level, m in lines if "answering again" in m]
    assert {level for level, m in lines if m in began + ended} == {"WARNING"}
    return [m.split(" (")[0] for m in began], [m.split(" after")[0] for m in ended]


async def test_background_passes_log_an_outage_once_and_its_end_once(
    services: Services, caplog: pytest.LogCaptureFixture, fresh_outage_log: OutageLog
) -> None:
    began, ended = await _passes_through_an_outage(services, caplog)
    # (no Temporal client here: the reconciler has nothing to do; task retention is off,
    # the ledger's is always on)
    parts = ["queue sweep", "ledger retention", "task counter compaction"]
    assert began == [f"{part}: database unavailable, waiting" for part in parts]
    assert ended == [f"{part}: database answering again" for part in parts]


async def test_retention_passes_log_an_outage_once_and_its_end_once(
    services: Services, caplog: pytest.LogCaptureFixture, fresh_outage_log: OutageLog
) -> None:
    """With NICO_TASK_RETENTION set, each retention pass (tasks, tray history, ledger,
    idempotency keys) meets the outage like the sweep: one line when it begins, one when
    it ends."""
    services.settings = services.settings.model_copy(update={"task_retention": 86400.0})
    began, ended = await _passes_through_an_outage(services, caplog)
    parts = [
        "queue sweep",
        "task retention",
        "history retention",
        "ledger retention",
        "key retention",
        "task counter compaction",
    ]
    assert began == [f"{part}: database unavailable, waiting" for part in parts]
    assert ended == [f"{part}: database answering again" for part in parts]


async def test_many_calls_meeting_one_outage_log_it_once(
    caplog: pytest.LogCaptureFixture, fresh_outage_log: OutageLog
) -> None:
    """Twenty trays' calls wait out the same outage: one line when it begins, one when
    it ends, not twenty of each."""
    refused = await _refused()
    failing = {"left": 60}

    async def query() -> str:
        if failing["left"] > 0:
            failing["left"] -= 1
            raise refused
        return "answer"

    caplog.set_level(logging.INFO)
    answers = await asyncio.gather(*(retrying(query) for _ in range(20)))
    assert answers == ["answer"] * 20
    lines = [r.getMessage() for r in caplog.records if r.name == "nico.engine.infra"]
    assert len([m for m in lines if "unavailable" in m]) == 1, lines
    assert len([m for m in lines if "answering again" in m]) == 1, lines
