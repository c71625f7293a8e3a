"""Workflow versioning: every committed history replays against today's workflow code.

`tests/engine/histories/*.json` are histories of released workflow code, one file per
path (power on/off/cycle, firmware, bring-up, cancel, fail-fast, queue promotion, step
timeout), recorded by `tests/engine/record_histories.py`. A change to workflow code that
is not guarded (`workflow.patched`, or a new workflow type) makes a task started by the
old code fail to replay on upgraded workers; here it fails CI instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from nico.engine.worker import WORKFLOWS, workflow_runner

HISTORIES = {
    path.stem: json.loads(path.read_text())
    for path in sorted((Path(__file__).parent / "histories").glob("*.json"))
}
PATHS = {
    "powercontrol_power_on",
    "powercontrol_power_off",
    "powercontrol_restart",
    "firmwarecontrol_upgrade",
    "bringup_bring_up",
    "cancel",
    "fail_fast",
    "queue_promotion_first",
    "queue_promotion_second",
    "timeout",
}


def test_every_workflow_path_has_a_recorded_history() -> None:
    assert set(HISTORIES) >= PATHS


@pytest.mark.parametrize("name", sorted(HISTORIES))
async def test_a_recorded_history_replays_on_the_current_code(name: str) -> None:
    recorded = HISTORIES[name]
    # The production worker's workflows and sandbox, so replay checks what workers run.
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=workflow_runner())
    assert recorded["workflows"], f"{name}.json holds no workflow history"
    for entry in recorded["workflows"]:
        history = WorkflowHistory.from_json(entry["id"], entry["history"])
        await replayer.replay_workflow(history)  # raises on any nondeterminism
